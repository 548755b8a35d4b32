"""The measurements: execute round trip, iopub throughput, queued executes.

Each helper drives one ``Client`` (see clients.py). CPU use of the three processes
involved (this client, the server, the path's kernel) is sampled around every timed piece,
so the report can say where the time went and whether the client was the bottleneck.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import psutil

from .clients import Client

PASS_CODE = "pass"


def stream_code(n: int) -> str:
    """n stream messages: ipykernel sends one per flush (checked by counting them)."""
    return f"import sys\nfor i in range({n}):\n    sys.stdout.write('x\\n'); sys.stdout.flush()"


def new_id() -> str:
    return uuid.uuid4().hex


class BenchError(RuntimeError):
    pass


class Stalled(BenchError):
    """Nothing arrived for a while: a lost reply or idle (or a wedged session)."""


STALL_SECONDS = 20.0


async def guarded(coro: Any, client: Client, stall: float = STALL_SECONDS) -> Any:
    """Run ``coro``; cancel it and raise Stalled if ``client`` receives nothing at all for
    ``stall`` seconds (so a lost message cannot hang the benchmark)."""
    task = asyncio.ensure_future(coro)
    seen, since = client.parsed, time.perf_counter()
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=1.0)
            if done:
                return task.result()
            now = time.perf_counter()
            if client.parsed != seen:
                seen, since = client.parsed, now
            elif now - since > stall:
                raise Stalled(f"{client.name}: nothing received for {stall:.0f} s")
    finally:
        if not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass


# --- CPU accounting ------------------------------------------------------------------


def _busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


def _cpu(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    try:
        t = proc.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return 0.0


@dataclass
class CpuAccount:
    """Seconds of CPU per process, and wall seconds, summed over timed pieces."""

    wall: float = 0.0
    client: float = 0.0
    server: float = 0.0
    kernel: float = 0.0
    parse: float = 0.0
    system: float = 0.0  # every process on the machine (busy CPU, from /proc/stat)

    def to_json(self, per: int, unit: str) -> dict[str, Any]:
        """CPU in µs per ``unit`` and as a share of wall time."""
        per = max(per, 1)
        wall = max(self.wall, 1e-9)
        return {
            f"client_us_per_{unit}": round(self.client / per * 1e6, 1),
            f"client_parse_us_per_{unit}": round(self.parse / per * 1e6, 1),
            f"server_us_per_{unit}": round(self.server / per * 1e6, 1),
            f"kernel_us_per_{unit}": round(self.kernel / per * 1e6, 1),
            "client_cpu_share": round(self.client / wall, 3),
            "client_parse_share": round(self.parse / wall, 3),
            "server_cpu_share": round(self.server / wall, 3),
            "kernel_cpu_share": round(self.kernel / wall, 3),
            # Everything else on the machine meanwhile, in cores (other jobs, idle kernels).
            "other_cpu_cores": round(
                max(self.system - self.client - self.server - self.kernel, 0.0) / wall, 3
            ),
        }


class Meter:
    """Samples CPU of the client (this process), the server and one kernel."""

    def __init__(self, server: psutil.Process, kernel: psutil.Process | None, client: Client):
        self.server, self.kernel, self.client = server, kernel, client

    def snapshot(self) -> tuple[float, ...]:
        return (
            time.perf_counter(),
            time.process_time(),
            _cpu(self.server),
            _cpu(self.kernel),
            self.client.parse_ns / 1e9,
            _busy(),
        )

    def add(self, account: CpuAccount, before: tuple[float, ...]) -> None:
        after = self.snapshot()
        account.wall += after[0] - before[0]
        account.client += after[1] - before[1]
        account.server += after[2] - before[2]
        account.kernel += after[3] - before[3]
        account.parse += after[4] - before[4]
        account.system += after[5] - before[5]


class quiet_gc:
    """No garbage collection in the client while a piece is timed (same for every path)."""

    def __enter__(self):
        gc.collect()
        gc.disable()

    def __exit__(self, *exc):
        gc.enable()


# --- one execute -----------------------------------------------------------------------


class Tally:
    """What one execute has received so far (readable while it runs)."""

    __slots__ = ("idle", "last", "replied", "streams")

    def __init__(self) -> None:
        self.streams = 0
        self.replied = self.idle = False
        self.last = time.perf_counter()  # when the last message for it arrived


async def execute(
    client: Client, code: str, timeout: float = 600, tally: Tally | None = None
) -> tuple[float, int]:
    """Send one execute_request; wait for its execute_reply AND its iopub idle.

    Returns (seconds from send to the later of the two, stream messages received for it).
    """
    msg_id = new_id()
    t = tally or Tally()
    clock = time.perf_counter
    t0 = clock()
    await client.send(msg_id, code)
    deadline = t0 + timeout
    while not (t.replied and t.idle):
        for _channel, msg_type, parent, state in await client.recv_batch():
            if parent != msg_id:
                continue
            t.last = clock()
            if msg_type == "stream":
                t.streams += 1
            elif msg_type == "status":
                if state == "idle":
                    t.idle = True
            elif msg_type == "execute_reply":
                if state != "ok":
                    raise BenchError(f"{client.name}: execute_reply status {state!r}")
                t.replied = True
        if t.last > deadline:
            raise BenchError(f"{client.name}: no reply+idle within {timeout} s")
    return clock() - t0, t.streams


class QueueTally:
    __slots__ = ("idles", "replies")

    def __init__(self) -> None:
        self.replies = self.idles = 0


async def execute_many(
    client: Client, n: int, code: str, pipelined: bool, tally: QueueTally | None = None
) -> float:
    """n executes: all sent at once (pipelined) or one at a time; seconds until the last
    reply+idle."""
    t = tally or QueueTally()
    t0 = time.perf_counter()
    if not pipelined:
        for _ in range(n):
            await execute(client, code)
            t.replies += 1
            t.idles += 1
        return time.perf_counter() - t0
    ids = [new_id() for _ in range(n)]
    waiting_reply = set(ids)
    waiting_idle = set(ids)
    for msg_id in ids:
        await client.send(msg_id, code)
    while waiting_reply or waiting_idle:
        for _channel, msg_type, parent, state in await client.recv_batch():
            if msg_type == "status":
                if state == "idle" and parent in waiting_idle:
                    waiting_idle.discard(parent)
                    t.idles += 1
            elif msg_type == "execute_reply" and parent in waiting_reply:
                if state != "ok":
                    raise BenchError(f"{client.name}: execute_reply status {state!r}")
                waiting_reply.discard(parent)
                t.replies += 1
    return time.perf_counter() - t0


# --- the three benchmarks --------------------------------------------------------------


@dataclass
class Path:
    """One way to the kernel, with its kernel process (for CPU accounting)."""

    name: str
    label: str
    client: Client
    meter: Meter
    latencies: list[float] = field(default_factory=list)
    rt_cpu: CpuAccount = field(default_factory=CpuAccount)


def summarize(latencies: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in latencies)
    n = len(ms)

    def pct(p: float) -> float:
        return ms[min(n - 1, max(0, round(p / 100 * n + 0.5) - 1))]

    return {
        "n": n,
        "p50_ms": round(statistics.median(ms), 4),
        "p90_ms": round(pct(90), 4),
        "p99_ms": round(pct(99), 4),
        "mean_ms": round(statistics.fmean(ms), 4),
        "min_ms": round(ms[0], 4),
        "max_ms": round(ms[-1], 4),
    }


async def roundtrip(paths: list[Path], n: int, warmup: int, block: int) -> None:
    """n one-at-a-time executes of `pass` per path, interleaved in blocks of ``block``
    (round robin over the paths, so drift over the run hits every path alike)."""

    async def run(p: Path, k: int, record: bool) -> None:
        for _ in range(k):
            latency, _ = await execute(p.client, PASS_CODE)
            if record:
                p.latencies.append(latency)

    for p in paths:
        await guarded(run(p, warmup, False), p.client)
    done = 0
    while done < n:
        k = min(block, n - done)
        for p in paths:
            with quiet_gc():
                before = p.meter.snapshot()
                await guarded(run(p, k, True), p.client)
                p.meter.add(p.rt_cpu, before)
        done += k


async def throughput(p: Path, messages: int) -> dict[str, Any]:
    """One cell writing ``messages`` lines, flushing each: stream messages per second.

    A path that cannot keep up loses iopub messages (ZeroMQ PUB drops what exceeds a slow
    subscriber's high-water mark), possibly the final idle too: after STALL_SECONDS with
    nothing new the run ends, timed to the last message received.
    """
    cpu = CpuAccount()
    tally = Tally()
    stalled = False
    with quiet_gc():
        before = p.meter.snapshot()
        t0 = time.perf_counter()
        try:
            seconds, received = await guarded(
                execute(p.client, stream_code(messages), tally=tally), p.client
            )
        except Stalled:
            stalled = True
            seconds, received = tally.last - t0, tally.streams
        p.meter.add(cpu, before)
    if stalled:
        cpu.wall -= time.perf_counter() - tally.last  # the wait is not part of the run
    result = {
        "requested_writes": messages,
        "stream_messages": received,
        "seconds": round(seconds, 3),
        "msgs_per_s": round(received / seconds, 1),
        "cpu": cpu.to_json(received, "msg"),
    }
    if stalled:
        result["idle_lost"] = not tally.idle
        result["reply_received"] = tally.replied
    return result


async def queue(p: Path, n: int, pipelined: bool) -> dict[str, Any]:
    cpu = CpuAccount()
    tally = QueueTally()
    with quiet_gc():
        before = p.meter.snapshot()
        try:
            seconds = await guarded(
                execute_many(p.client, n, PASS_CODE, pipelined, tally), p.client
            )
        except Stalled as e:
            return {
                "n": n,
                "pipelined": pipelined,
                "error": f"{e}; {tally.replies} replies and {tally.idles} idles of {n} arrived",
            }
        p.meter.add(cpu, before)
    return {
        "n": n,
        "pipelined": pipelined,
        "seconds": round(seconds, 3),
        "per_execute_ms": round(seconds / n * 1000, 4),
        "cpu": cpu.to_json(n, "exec"),
    }
