"""``python -m benchmarks.remote_start``: how long a kernel on "another machine" takes to start,
next to a local one.

The remote kernel is gateway-provisioners' DistributedProvisioner over SSH, through the private
sshd of the tests (tests/support/sshd.py: 127.0.0.2, its own keys, nothing of the machine's ssh setup),
with a kernelspec from ``jupyter ssh-spec install``. The local one is the python3 kernelspec.
One ``jupyter session-ext`` runs both; they take turns: create, start (timed), one execute
(timed), delete. Then, with one remote kernel running, the server's GET /status latency (what
gateway-provisioners' response socket would cost the event loop with its default
``GP_SOCKET_TIMEOUT``: try ``--gp-socket-timeout 0.01``).

Needs openssh-server (``make sshd``) and the test extra (gateway-provisioners).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.sshd import Sshd

from .server import API, SupervisorServer


def install_spec(data_dir: Path, host: str) -> None:
    jupyter = str(Path(sys.executable).with_name("jupyter"))
    subprocess.run(
        [
            jupyter,
            "ssh-spec",
            "install",
            "--user",
            "--kernel-name=ssh_bench",
            f"--remote-hosts={host}",
            "--unauthorized-users=nobody",
        ],
        env={**os.environ, "JUPYTER_DATA_DIR": str(data_dir)},
        check=True,
        capture_output=True,
        timeout=60,
    )
    path = data_dir / "kernels" / "ssh_bench" / "kernel.json"
    spec = json.loads(path.read_text())
    spec["argv"][0] = sys.executable
    path.write_text(json.dumps(spec))


def summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return (
        f"median {statistics.median(ms):7.0f} ms   min {ms[0]:7.0f}   max {ms[-1]:7.0f}"
        f"   (n={len(ms)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=8, help="starts per kernelspec")
    parser.add_argument("--gp-socket-timeout", help="GP_SOCKET_TIMEOUT for the server")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="session_ext_remote_bench_"))
    sshd = Sshd(root / "sshd").start()
    server = None
    processes: list[psutil.Process] = []  # kernels on "the remote" and their listeners

    def remember(model: dict) -> None:
        pid = (model["provisioner"] or {}).get("pid")
        try:
            kernel = psutil.Process(pid)
            processes.extend([kernel, *kernel.children(recursive=True)])
        except (psutil.Error, TypeError, ValueError):
            pass

    try:
        install_spec(root / "data", sshd.host)
        os.environ.update(
            JUPYTER_DATA_DIR=str(root / "data"),
            HOME=str(sshd.home),
            GP_SSH_PORT=str(sshd.port),
            GP_RESPONSE_IP="127.0.0.1",
            GP_KERNEL_LOG_DIR=str(root),
        )
        if args.gp_socket_timeout is not None:
            os.environ["GP_SOCKET_TIMEOUT"] = args.gp_socket_timeout
        server = SupervisorServer()
        server.start()
        times: dict[str, dict[str, list[float]]] = {}
        for i in range(args.n):
            for name in ("python3", "ssh_bench"):
                sid = f"{name}-{i}"
                server.ok("PUT", f"/{API}/sessions", {"session_id": sid, "kernel_name": name})
                t0 = time.perf_counter()
                server.ok("POST", f"/{API}/sessions/{sid}/start", timeout=120)
                t1 = time.perf_counter()
                remember(server.ok("GET", f"/{API}/sessions/{sid}"))
                server.ok("POST", f"/{API}/sessions/{sid}/execute", {"code": "1"})
                t2 = time.perf_counter()
                server.ok("DELETE", f"/{API}/sessions/{sid}?force=true", timeout=120)
                entry = times.setdefault(name, {"start": [], "first execute": []})
                entry["start"].append(t1 - t0)
                entry["first execute"].append(t2 - t1)
        print(f"kernel start through `jupyter session-ext` ({psutil.cpu_count()} cores)")
        for name, label in (
            ("python3", "local (LocalProvisioner)"),
            ("ssh_bench", "SSH (DistributedProvisioner)"),
        ):
            for what, values in times[name].items():
                print(f"  {label:30s} {what:14s} {summary(values)}")

        server.ok("PUT", f"/{API}/sessions", {"session_id": "idle", "kernel_name": "ssh_bench"})
        server.ok("POST", f"/{API}/sessions/idle/start", timeout=120)
        remember(server.ok("GET", f"/{API}/sessions/idle"))
        latency = []
        for _ in range(100):
            t0 = time.perf_counter()
            server.ok("GET", f"/{API}/status")
            latency.append(time.perf_counter() - t0)
        timeout = os.environ.get("GP_SOCKET_TIMEOUT", "0 (session_ext's default)")
        print(
            f"  GET /status with a remote kernel running, GP_SOCKET_TIMEOUT={timeout}: "
            f"median {statistics.median(latency) * 1000:.1f} ms"
        )
    finally:
        if server is not None:
            server.cleanup()
        for proc in processes:  # not the server's children: it cannot take them down
            try:
                proc.kill()
            except psutil.Error:
                pass
        sshd.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
