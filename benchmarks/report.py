"""The machine description and the markdown tables."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

PACKAGES = (
    "session_ext",
    "jupyter_server",
    "jupyter_client",
    "ipykernel",
    "pyzmq",
    "tornado",
    "websockets",
)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    import zmq

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "libzmq": zmq.zmq_version(),
        "versions": versions,
    }


def _ratio(value: float | None, floor: float | None) -> str:
    if not value or not floor:
        return ""
    return f"{value / floor:.2f}×"


def tables(results: dict[str, Any]) -> str:
    m = results["machine"]
    labels = results["paths"]
    out: list[str] = []
    v = m["versions"]
    out.append(
        f"**Machine**: {m['cpu_model']}, {m['cores']} cores ({m['usable_cores']} usable), "
        f"Python {m['python']}; jupyter_server {v['jupyter_server']}, jupyter_client "
        f"{v['jupyter_client']}, ipykernel {v['ipykernel']}, pyzmq {v['pyzmq']} (libzmq "
        f"{m['libzmq']}), tornado {v['tornado']}, websockets {v['websockets']}, session_ext "
        f"{v['session_ext']}"
    )
    cfg = results["config"]
    out.append(
        f"**Run**: {cfg['n']} round trips per path (+{cfg['warmup']} warm-up, interleaved in "
        f"blocks of {cfg['block']}), {cfg['messages']} stream writes, {cfg['queue_n']} queued "
        f"executes; websocket client `{cfg['ws_client']}`, legacy JSON protocol on the stock "
        f"websocket; one kernel per path; {results['wall_seconds']:.0f} s in all."
    )
    out.append("")
    out.append("| path | metric | value | ratio to floor |")
    out.append("|---|---|---|---|")
    rt = results["roundtrip"]
    floor = rt["zmq"]["p50_ms"]
    for name, r in rt.items():
        label = labels[name]
        out.append(
            f"| {label} | round trip p50 | {r['p50_ms']:.3f} ms | {_ratio(r['p50_ms'], floor)} |"
        )
        out.append(
            f"| {label} | round trip p99 | {r['p99_ms']:.3f} ms | {_ratio(r['p99_ms'], rt['zmq']['p99_ms'])} |"
        )
        out.append(
            f"| {label} | round trip mean | {r['mean_ms']:.3f} ms | {_ratio(r['mean_ms'], rt['zmq']['mean_ms'])} |"
        )
    tp = results["throughput"]
    tfloor = tp["zmq"]["msgs_per_s"]
    for name, r in tp.items():
        label = labels[name]
        lost = r["requested_writes"] - r["stream_messages"]
        note = f" ({lost:,} lost{', idle lost' if r.get('idle_lost') else ''})" if lost else ""
        out.append(
            f"| {label} | iopub throughput | {r['msgs_per_s']:,.0f} msg/s "
            f"({r['stream_messages']:,} msgs in {r['seconds']:.2f} s){note} | "
            f"{_ratio(r['msgs_per_s'], tfloor)} |"
        )
    q = results["queue"]
    qfloor = q["zmq_one_by_one"].get("seconds")
    for key, label in (
        ("zmq_one_by_one", f"{labels['zmq']}, one by one"),
        ("zmq_pipelined", f"{labels['zmq']}, all sent at once (reference)"),
        ("ours_ws_pipelined", f"{labels['ours_ws']}, all sent at once"),
    ):
        if key not in q:
            continue
        r = q[key]
        if "error" in r:
            out.append(f"| {label} | {r['n']} executes of `pass` | FAILED: {r['error']} | |")
            continue
        out.append(
            f"| {label} | {r['n']} executes of `pass` | {r['seconds']:.2f} s "
            f"({r['per_execute_ms']:.3f} ms each) | {_ratio(r['seconds'], qfloor)} |"
        )
    out.append("")
    out.append(
        "**Where the CPU went** (µs of CPU per execute or per stream message, from /proc; "
        "`share` = CPU seconds / wall seconds; *other* = CPU used by everything else on the "
        "machine meanwhile, in cores)"
    )
    out.append("")
    out.append(
        "| path | phase | server µs | kernel µs | client µs (of which JSON decode) | "
        "client share | server share | other |"
    )
    out.append("|---|---|---|---|---|---|---|---|")
    rows = [("round trip", "exec", name, rt[name]["cpu"]) for name in rt]
    rows += [("throughput", "msg", name, tp[name]["cpu"]) for name in tp]
    rows += [("queue", "exec", key, q[key]["cpu"]) for key in q if "cpu" in q[key]]
    for phase, unit, name, c in rows:
        label = labels.get(name, name)
        out.append(
            f"| {label} | {phase} | {c[f'server_us_per_{unit}']:.1f} | "
            f"{c[f'kernel_us_per_{unit}']:.1f} | {c[f'client_us_per_{unit}']:.1f} "
            f"({c[f'client_parse_us_per_{unit}']:.1f}) | {c['client_cpu_share']:.2f} | "
            f"{c['server_cpu_share']:.2f} | {c['other_cpu_cores']:.2f} |"
        )
    out.append("")
    out.append("**Targets**")
    out.append("")
    for t in results["targets"]:
        out.append(f"- {'PASS' if t['met'] else 'MISS'}: {t['target']} — {t['detail']}")
    for note in results.get("notes", []):
        out.append(f"- note: {note}")
    return "\n".join(out)
