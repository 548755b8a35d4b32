"""``python -m benchmarks.run``: session_ext against direct ZeroMQ and stock jupyter_server.

Starts one real ``jupyter session-ext`` on a free loopback port with a random token, one
python3 (ipykernel) kernel per path, and measures side by side:

1. execute round trip (`pass`, one at a time, until execute_reply AND iopub idle);
2. queued executes (N sent at once through our websocket vs one by one over ZeroMQ);
3. iopub throughput (one cell writing N lines, flushing each: stream messages/second).

Paths, each on its own kernel:

- ``zmq``: jupyter_client's AsyncKernelClient on a session's kernel (the floor);
- ``stock_ws_plain``: jupyter_server's /api/kernels/{id}/channels on a kernel started by
  POST /api/kernels, which session_ext does not supervise (pure stock);
- ``stock_ws``: the same websocket on a session's kernel (session_ext's jupyter_server
  integration queues its execute_requests; iopub stays stock);
- ``ours_ws``: /supervisor/sessions/{id}/channels;
- ``ours_ws_nb``: the same on a notebook session, each request from one cell
  (``metadata.cellId``): the supervisor also keeps the cell's outputs.

Both jupyter_server websockets use the legacy JSON protocol (no subprotocol), what most
clients speak. Results go to benchmarks/results/latest.json and stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path as FsPath
from typing import Any

import psutil

from . import measure
from .clients import OursNotebookWsClient, OursWsClient, StockWsClient, ZmqClient
from .measure import Meter, Path
from .report import machine, tables
from .server import SupervisorServer

HERE = FsPath(__file__).resolve().parent

LABELS = {
    "zmq": "direct ZeroMQ (floor)",
    "stock_ws_plain": "stock jupyter_server ws, plain kernel",
    "stock_ws": "jupyter_server ws, session kernel",
    "ours_ws": "ours (channels ws)",
    "ours_ws_nb": "ours (channels ws), notebook cell kept",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--n", type=int, default=1000, help="round trips per path (default 1000)")
    p.add_argument("--warmup", type=int, default=50, help="warm-up executes per path (50)")
    p.add_argument("--block", type=int, default=100, help="round trips per interleaved block")
    p.add_argument("--messages", type=int, default=100_000, help="stream writes (100000)")
    p.add_argument("--queue-n", type=int, default=2000, help="queued executes (2000)")
    p.add_argument("--ws-client", choices=("websockets", "tornado"), default="websockets")
    p.add_argument(
        "--no-plain",
        action="store_true",
        help="skip stock_ws_plain (the stock websocket on a kernel from POST /api/kernels, "
        "which session_ext does not supervise: the pure-stock reference; ~80 s)",
    )
    p.add_argument(
        "--queue-reference",
        action="store_true",
        help="also time the queued executes all sent at once straight over ZeroMQ",
    )
    p.add_argument(
        "--output", default=str(HERE / "results" / "latest.json"), help="JSON results file"
    )
    p.add_argument(
        "--server-launcher",
        help="run this Python script instead of `jupyter session-ext` (same arguments), "
        "to try a monkeypatched server; recorded in the results",
    )
    p.add_argument(
        "--server-arg", action="append", default=[], help="extra server argument (repeatable)"
    )
    p.add_argument("--keep-tmp", action="store_true", help="keep the server's temp dir (log)")
    return p.parse_args(argv)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def bench(server: SupervisorServer, args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.perf_counter()
    load_before = os.getloadavg()
    server_proc = psutil.Process(server.proc.pid)

    log("starting kernels ...")
    names = ["zmq", "stock_ws", "ours_ws", "ours_ws_nb"]
    modes = {"ours_ws_nb": "notebook"}
    sessions = {}
    for name in names:  # one at a time: parallel starts race for ports
        sessions[name] = await asyncio.to_thread(
            server.start_session, f"bench-{name}", session_mode=modes.get(name, "console")
        )
    plain_id = plain_pid = None
    plain_supervised = False
    if not args.no_plain:
        plain_id, plain_pid = await asyncio.to_thread(server.start_plain_kernel)
        listed = await asyncio.to_thread(server.ok, "GET", "/supervisor/sessions")
        plain_supervised = any(s.get("kernel_id") == plain_id for s in listed["sessions"])

    clients = {
        "zmq": ZmqClient(server.connection_info("bench-zmq")),
        "stock_ws": StockWsClient(
            server.ws_base, sessions["stock_ws"]["kernel_id"], server.token, args.ws_client
        ),
        "ours_ws": OursWsClient(server.ws_base, "bench-ours_ws", server.token, args.ws_client),
        "ours_ws_nb": OursNotebookWsClient(
            server.ws_base, "bench-ours_ws_nb", server.token, args.ws_client
        ),
    }
    pids = {name: sessions[name]["process_id"] for name in names}
    if plain_id is not None:
        clients["stock_ws_plain"] = StockWsClient(
            server.ws_base, plain_id, server.token, args.ws_client
        )
        pids["stock_ws_plain"] = plain_pid
    order = [
        n for n in ("zmq", "stock_ws_plain", "stock_ws", "ours_ws", "ours_ws_nb") if n in clients
    ]

    paths: dict[str, Path] = {}
    try:
        for name in order:
            client = clients[name]
            await client.connect()
            kernel = psutil.Process(pids[name]) if pids[name] else None
            paths[name] = Path(name, LABELS[name], client, Meter(server_proc, kernel, client))
        notes: list[str] = []
        if plain_supervised:
            notes.append("the plain kernel is supervised by session_ext too: not pure stock")

        # 0. Does ipykernel send one stream message per flushed write? Count text lines too.
        check_n = 2000
        zc = clients["zmq"]
        zc.count_lines = True
        _, check_msgs = await measure.execute(zc, measure.stream_code(check_n))
        zc.count_lines = False
        batching = {"writes": check_n, "messages": check_msgs, "lines": zc.stream_lines}
        log(f"batching check: {batching}")
        if check_msgs != check_n:
            notes.append(
                f"ipykernel batched output: {check_msgs} messages for {check_n} flushed writes"
            )

        # 1. Round trip.
        log(f"round trip: {args.n} x {len(paths)} paths ...")
        await measure.roundtrip(list(paths.values()), args.n, args.warmup, args.block)
        floor = None
        roundtrip: dict[str, Any] = {}
        for name, p in paths.items():
            r = measure.summarize(p.latencies)
            floor = floor or r["p50_ms"]
            r["ratio_p50_to_floor"] = round(r["p50_ms"] / floor, 3)
            r["cpu"] = p.rt_cpu.to_json(len(p.latencies), "exec")
            roundtrip[name] = r
            log(f"  {name}: p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms")

        # 2. Queue (before the throughput floods, which may wedge a session).
        queue: dict[str, Any] = {}
        log(f"queue: {args.queue_n} executes ...")
        queue["zmq_one_by_one"] = await measure.queue(paths["zmq"], args.queue_n, False)
        if args.queue_reference:
            queue["zmq_pipelined"] = await measure.queue(paths["zmq"], args.queue_n, True)
        queue["ours_ws_pipelined"] = await measure.queue(paths["ours_ws"], args.queue_n, True)
        base = queue["zmq_one_by_one"].get("seconds")
        for key, r in queue.items():
            if "seconds" in r and base:
                r["ratio_to_zmq_one_by_one"] = round(r["seconds"] / base, 3)
            log(f"  {key}: {r.get('seconds', r.get('error'))}")
        # 3. Throughput, one path at a time.
        throughput: dict[str, Any] = {}
        for name, p in paths.items():
            log(f"throughput: {name}, {args.messages} writes ...")
            r = await measure.throughput(p, args.messages)
            throughput[name] = r
            lost = " (idle lost)" if r.get("idle_lost") else ""
            log(f"  {name}: {r['stream_messages']} msgs, {r['msgs_per_s']:.0f} msg/s{lost}")
        # Did the supervisor's queue see the end of the flood? (Its own iopub socket can
        # lose the idle too, leaving the request "active" and the queue stuck.)
        await asyncio.sleep(2)
        model = await asyncio.to_thread(server.ok, "GET", "/supervisor/sessions/bench-ours_ws")
        active = (model.get("execution_queue") or {}).get("active")
        if active is not None:
            notes.append(
                f"session bench-ours_ws is wedged after the throughput cell: status "
                f"{model.get('status')!r}, queue still has an active request and "
                f"{model['execution_queue'].get('length')} pending (its iopub idle was lost)"
            )
        for name, r in throughput.items():
            if r["stream_messages"] < r["requested_writes"]:
                notes.append(
                    f"{name} lost {r['requested_writes'] - r['stream_messages']:,} of "
                    f"{r['requested_writes']:,} stream messages"
                    + (" and the idle" if r.get("idle_lost") else "")
                    + " (ZeroMQ PUB drops messages for a subscriber that falls behind)"
                )
        tfloor = throughput["zmq"]["msgs_per_s"]
        for r in throughput.values():
            r["ratio_to_floor"] = round(r["msgs_per_s"] / tfloor, 3)
            if r["stream_messages"] < r["requested_writes"]:
                r["lost"] = r["requested_writes"] - r["stream_messages"]

    finally:
        for client in clients.values():
            try:
                await asyncio.wait_for(client.close(), 10)
            except Exception:
                pass

    ours, zmq_rt = roundtrip["ours_ws"], roundtrip["zmq"]
    targets = [
        {
            "target": "our round trip p50 ≤ 1.3× direct ZeroMQ",
            "met": ours["p50_ms"] <= 1.3 * zmq_rt["p50_ms"],
            "detail": f"{ours['p50_ms']:.3f} ms vs {zmq_rt['p50_ms']:.3f} ms "
            f"({ours['p50_ms'] / zmq_rt['p50_ms']:.2f}×)",
        }
    ]
    for stock in ("stock_ws", "stock_ws_plain"):
        if stock in roundtrip:
            s = roundtrip[stock]
            targets.append(
                {
                    "target": f"our round trip p50 no slower than {LABELS[stock]}",
                    "met": ours["p50_ms"] <= s["p50_ms"],
                    "detail": f"{ours['p50_ms']:.3f} ms vs {s['p50_ms']:.3f} ms "
                    f"({ours['p50_ms'] / s['p50_ms']:.2f}×)",
                }
            )
    for stock in ("stock_ws", "stock_ws_plain"):
        if stock in throughput:
            o, s = throughput["ours_ws"], throughput[stock]
            targets.append(
                {
                    "target": f"our throughput ≥ {LABELS[stock]}",
                    "met": o["msgs_per_s"] >= s["msgs_per_s"],
                    "detail": f"{o['msgs_per_s']:,.0f} vs {s['msgs_per_s']:,.0f} msg/s "
                    f"({o['msgs_per_s'] / s['msgs_per_s']:.2f}×)",
                }
            )
    phases = (("round trip", roundtrip), ("queue", queue), ("throughput", throughput))
    busy = [
        f"{phase} {name} ({r['cpu']['other_cpu_cores']:.2f})"
        for phase, results_ in phases
        for name, r in results_.items()
        if "cpu" in r and r["cpu"]["other_cpu_cores"] > 0.2
    ]
    if busy:
        notes.append(
            "other processes used CPU (cores) during: "
            + ", ".join(busy)
            + "; those numbers are less reliable"
        )
    for stock in ("stock_ws", "stock_ws_plain"):
        if stock in throughput:
            o = throughput["ours_ws"]["cpu"]["server_us_per_msg"]
            s = throughput[stock]["cpu"]["server_us_per_msg"]
            notes.append(
                f"server CPU per iopub message: ours {o:.0f} µs vs {LABELS[stock]} {s:.0f} µs "
                f"({o / s:.2f}×); one server core could forward ~{1e6 / o:,.0f} vs "
                f"~{1e6 / s:,.0f} msg/s"
            )
    return {
        "paths": {n: LABELS[n] for n in paths},
        "batching_check": batching,
        "roundtrip": roundtrip,
        "throughput": throughput,
        "queue": queue,
        "targets": targets,
        "notes": notes,
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "wall_seconds": round(time.perf_counter() - t_start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    server_args = list(args.server_arg)
    server = SupervisorServer(server_args, keep_dir=args.keep_tmp, launcher=args.server_launcher)
    started = time.time()
    try:
        log(f"starting jupyter session-ext on 127.0.0.1:{server.port} ...")
        server.start()
        results = asyncio.run(bench(server, args))
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    except Exception:
        log(f"benchmark failed; server log tail:\n{server.log_tail()}")
        raise
    finally:
        server.cleanup()
        if args.keep_tmp:
            log(f"server files kept in {server.workdir}")

    results = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "machine": machine(),
        "config": {
            "n": args.n,
            "warmup": args.warmup,
            "block": args.block,
            "messages": args.messages,
            "queue_n": args.queue_n,
            "ws_client": args.ws_client,
            "stock_protocol": "legacy JSON (no subprotocol)",
            "stock_rate_limit": "off (ZMQChannelsWebsocketConnection.limit_rate=False)",
            "kernels": "one python3 (ipykernel) kernel per path",
            "server_launcher": args.server_launcher,
            "server_args": server_args,
        },
        **results,
    }
    out = FsPath(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(tables(results))
    print(f"\n(results: {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
