"""``python -m benchmarks.client_overhead``: what session_ext.client costs over a raw
websocket.

One real ``jupyter session-ext``, one python3 kernel, one session. The execute round trip of
`pass` (sent until its execute_reply and its iopub idle have come) through:

- ``raw``: a websockets connection to ``/sessions/{id}/channels``, a hand-made frame, every
  frame decoded (what any client must do to find its reply): the reference;
- ``async``: ``AsyncSession.execute("pass")`` awaited (message building, routing, the
  reply model);
- ``sync``: ``Session.execute("pass").result()`` (the same, driven from another thread
  through anyio's blocking portal).

The paths take turns in blocks (each block on a fresh connection, warmed up first, the
others closed: nothing else reads the session's frames meanwhile). Target: each client's
p50 ≤ 1.1× raw's. ``make bench`` runs it after ``benchmarks.run``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path as FsPath
from typing import Any

from websockets.asyncio.client import connect

from session_ext.client import AsyncSupervisor, Supervisor

from .clients import execute_request
from .measure import summarize
from .report import machine
from .server import API, SupervisorServer

HERE = FsPath(__file__).resolve().parent
TARGET = 1.1
SESSION = "bench-client"


async def raw_block(server: SupervisorServer, n: int, warmup: int) -> list[float]:
    url = f"{server.ws_base}/{API}/sessions/{SESSION}/channels"
    headers = {"Authorization": f"Bearer {server.token}"}
    times = []
    async with connect(url, additional_headers=headers, compression=None, max_size=None) as ws:
        for i in range(warmup + n):
            msg_id = uuid.uuid4().hex
            t0 = time.perf_counter()
            await ws.send(json.dumps(execute_request(msg_id, "pass")))
            replied = idle = False
            while not (replied and idle):
                frame = json.loads(await ws.recv())
                if (frame.get("parent_header") or {}).get("msg_id") != msg_id:
                    continue
                msg_type = frame["header"]["msg_type"]
                replied = replied or msg_type == "execute_reply"
                idle = idle or (
                    msg_type == "status" and frame["content"]["execution_state"] == "idle"
                )
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return times


async def async_block(sv: AsyncSupervisor, n: int, warmup: int) -> list[float]:
    session = sv.session(SESSION)
    await session.connect()
    times = []
    try:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            reply = await session.execute("pass")
            if i >= warmup:
                times.append(time.perf_counter() - t0)
            assert reply.status == "ok"
    finally:
        await session.close()
    return times


def sync_block(sv: Supervisor, n: int, warmup: int) -> list[float]:
    session = sv.session(SESSION)
    session.connect()
    times = []
    try:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            reply = session.execute("pass").result()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
            assert reply.status == "ok"
    finally:
        session.close()
    return times


async def bench(server: SupervisorServer, args: argparse.Namespace) -> dict[str, Any]:
    await asyncio.to_thread(server.start_session, SESSION)
    latencies: dict[str, list[float]] = {"raw": [], "async": [], "sync": []}
    cpu = dict.fromkeys(latencies, 0.0)  # this process's CPU seconds (all its threads)
    endpoint = f"{server.base}/{API}"
    async with AsyncSupervisor(endpoint, server.token) as asv:
        sv = await asyncio.to_thread(Supervisor, endpoint, server.token)
        try:
            blocks = max(1, args.n // args.block)
            for b in range(blocks):
                for name, block in (
                    ("raw", lambda: raw_block(server, args.block, args.warmup)),
                    ("async", lambda: async_block(asv, args.block, args.warmup)),
                    ("sync", lambda: asyncio.to_thread(sync_block, sv, args.block, args.warmup)),
                ):
                    before = time.process_time()
                    latencies[name] += await block()
                    cpu[name] += time.process_time() - before
                print(f"block {b + 1}/{blocks}", file=sys.stderr, flush=True)
        finally:
            await asyncio.to_thread(sv.close)
    results: dict[str, Any] = {name: summarize(values) for name, values in latencies.items()}
    floor = results["raw"]["p50_ms"]
    executes = blocks * (args.block + args.warmup)
    for name, r in results.items():
        r["client_cpu_us"] = round(cpu[name] / executes * 1e6, 1)
        r["ratio_p50_to_raw"] = round(r["p50_ms"] / floor, 3)
        r["ratio_mean_to_raw"] = round(r["mean_ms"] / results["raw"]["mean_ms"], 3)
    return {"roundtrip": results, "machine": machine(), "n": args.n, "block": args.block}


LABELS = {
    "raw": "raw websocket (reference)",
    "async": "AsyncSession.execute",
    "sync": "Session.execute (blocking)",
}


def report(results: dict[str, Any]) -> str:
    rt = results["roundtrip"]
    lines = [
        "| path | p50 | p90 | p99 | mean | client CPU per execute | p50 ratio to raw |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rt.items():
        lines.append(
            f"| {LABELS[name]} | {r['p50_ms']:.3f} ms | {r['p90_ms']:.3f} ms | "
            f"{r['p99_ms']:.3f} ms | {r['mean_ms']:.3f} ms | {r['client_cpu_us']:.0f} µs | "
            f"{r['ratio_p50_to_raw']:.2f}× |"
        )
    lines.append("")
    for name in ("async", "sync"):
        ratio = rt[name]["ratio_p50_to_raw"]
        verdict = "PASS" if ratio <= TARGET else "MISS"
        lines.append(
            f"- {verdict}: {LABELS[name]} round trip p50 ≤ {TARGET}× raw websocket — "
            f"{rt[name]['p50_ms']:.3f} ms vs {rt['raw']['p50_ms']:.3f} ms ({ratio:.2f}×)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.client_overhead", description=__doc__)
    p.add_argument("--n", type=int, default=1000, help="round trips per path (1000)")
    p.add_argument("--block", type=int, default=100, help="round trips per block (100)")
    p.add_argument("--warmup", type=int, default=10, help="warm-up executes per block (10)")
    p.add_argument("--output", default=str(HERE / "results" / "client_overhead.json"))
    args = p.parse_args(argv)
    server = SupervisorServer()
    try:
        server.start()
        results = asyncio.run(bench(server, args))
    finally:
        server.cleanup()
    out = FsPath(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
