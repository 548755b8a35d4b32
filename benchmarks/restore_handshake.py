"""``python -m benchmarks.restore_handshake``: how long a restarted durable
``session-ext-kcserver`` takes to hand its state over (Positron's handshake, which Positron
waits 10 s for) with many stored kernels, and how long until they are all re-attached.

The server is launched as Positron launches kcserver (a handshake socket, a token file),
``--sessions`` python3 sessions are started, the server is SIGKILLed and launched again,
``--n`` times: with the stored kernels idle, and with them stopped (SIGSTOP: kernels that
cannot answer, as very busy ones; resumed once the handshake has come). Timed: launch to
handshake, handshake (or resume) to every session `idle`. The first launch, with nothing
stored, is the floor.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support.helpers import http_json
from tests.support.kcserver import KcServer


def timed_launch(kc: KcServer) -> tuple[float, str]:
    began = time.monotonic()
    state = kc.start_like_positron("tcp", timeout=300)
    return time.monotonic() - began, state["base_path"]


def until_idle(kc: KcServer, base: str, timeout: float = 300) -> float:
    began = time.monotonic()
    while True:
        code, body = http_json("GET", f"{base}/sessions", kc.token)
        if code == 200 and {s["status"] for s in body["sessions"]} == {"idle"}:
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"not all idle after {timeout} s")
        time.sleep(0.05)


def start_sessions(kc: KcServer, base: str, count: int) -> list[int]:
    def start(i: int) -> int:
        session_id = f"s{i}"
        http_json(
            "PUT",
            f"{base}/sessions",
            kc.token,
            {"session_id": session_id, "kernel_name": "python3"},
        )
        code, body = http_json("POST", f"{base}/sessions/{session_id}/start", kc.token, timeout=120)
        assert code == 200, body
        return http_json("GET", f"{base}/sessions/{session_id}", kc.token)[1]["process_id"]

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(start, range(count)))


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):6.2f} s   max {max(values):6.2f} s   (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=20, help="stored kernels")
    parser.add_argument("--n", type=int, default=3, help="restarts per case")
    args = parser.parse_args()

    kc = KcServer(Path(tempfile.mkdtemp(prefix="session_ext_restore_bench_")))
    pids: list[int] = []
    results: dict[str, list[float]] = {}
    try:
        first, base = timed_launch(kc)
        results["handshake, nothing stored"] = [first]
        pids = start_sessions(kc, base, args.sessions)
        for stopped in (False, True):
            case = "stopped" if stopped else "idle"
            for _ in range(args.n):
                kc.proc.kill()
                kc.wait()
                for pid in pids if stopped else ():
                    os.kill(pid, signal.SIGSTOP)
                handshake, base = timed_launch(kc)
                for pid in pids if stopped else ():
                    os.kill(pid, signal.SIGCONT)
                results.setdefault(f"handshake, {args.sessions} {case} kernels", []).append(
                    handshake
                )
                results.setdefault(f"then all idle ({case})", []).append(until_idle(kc, base))
        http_json("POST", f"{base}/shutdown", kc.token)
        kc.wait(60)
    finally:
        kc.cleanup()
        for pid in pids:  # durable kernels outlive the server that started them
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    for name, values in results.items():
        print(f"{name:<40} {summary(values)}")


if __name__ == "__main__":
    main()
