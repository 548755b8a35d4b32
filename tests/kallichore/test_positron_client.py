"""Positron's own generated Kallichore client (``../shared/reference/positron-kcclient``, copied
unmodified into a temporary directory) drives ``session-ext-kcserver`` launched with Positron's
exact command line: ``tests/positron/driver.ts``, type-checked with ``tsc --strict`` against
the client's interfaces, compiled and run with node (axios, ws and typescript from
``tests/positron/package-lock.json``, installed by ``make test``)."""

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ..support.helpers import WAIT, reference
from ..support.kcserver import KcServer

HERE = Path(__file__).resolve().parents[1] / "positron"
CLIENT_FILES = ("api.ts", "base.ts", "common.ts", "configuration.ts", "index.ts")
DRIVER_TIMEOUT = 300


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """The client and the driver in a temporary directory, type-checked and compiled."""
    client = reference("positron-kcclient", "Positron's generated client")
    node_modules = HERE / "node_modules"
    if not (node_modules / ".bin" / "tsc").exists():
        pytest.fail(f"{node_modules} is missing: run `make test` (npm ci in tests/positron)")
    work = tmp_path_factory.mktemp("positron-driver")
    (work / "kcclient").mkdir()
    for name in CLIENT_FILES:
        shutil.copyfile(client / name, work / "kcclient" / name)  # unmodified
        assert (work / "kcclient" / name).read_bytes() == (client / name).read_bytes()
    for name in ("driver.ts", "checks.ts", "tsconfig.json"):
        shutil.copyfile(HERE / name, work / name)
    (work / "node_modules").symlink_to(node_modules)
    tsc = [str(node_modules / ".bin" / "tsc"), "-p", str(work)]
    for args in (["--strict", "--noEmit"], []):  # type-check, then emit
        result = subprocess.run(tsc + args, capture_output=True, text=True, timeout=WAIT * 4)
        assert result.returncode == 0, f"tsc {args}: {result.stdout}{result.stderr}"
    return work / "out" / "driver.js"


@pytest.fixture
def kc(tmp_path):
    server = KcServer(tmp_path)
    yield server
    server.cleanup()


def run_driver(driver: Path, state: dict, kc: KcServer) -> dict:
    state_file = kc.workdir / "state.json"
    state_file.touch(mode=0o600)
    state_file.write_text(json.dumps(state))
    (kc.workdir / "cwd").mkdir(exist_ok=True)
    result = subprocess.run(
        ["node", str(driver), str(state_file), sys.executable, str(kc.workdir / "cwd")],
        capture_output=True,
        text=True,
        timeout=DRIVER_TIMEOUT,
        cwd=kc.workdir,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, (
        f"no report; stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}"
        f"\nserver: {kc.output()[-3000:]}"
    )
    report = json.loads(lines[-1][len("REPORT ") :])
    print(json.dumps(report, indent=1))  # the operation-by-operation report (pytest -s)
    failed = {op: r for op, r in report.items() if not r["ok"]}
    assert result.returncode == 0 and not failed, (
        f"{failed}\nstderr: {result.stderr[-3000:]}\nserver: {kc.output()[-3000:]}"
    )
    return report


def assert_exercised(report: dict) -> None:
    for op in (
        "serverStatus",
        "serverStatus (stale token → 401)",
        "newSession",
        "startSession",
        "getSession",
        "listSessions",
        "channels websocket",
        "channels: kernel_info",
        "channels: execute",
        "interruptSession",
        "restartSession",
        "connectionInfo",
        "clientHeartbeat",
        "getServerConfiguration",
        "setServerConfiguration",
        "executeCode",
        "getSessionHistory",
        "adoptSession",
        "killSession",
        "deleteSession",
        "shutdownServer",
        "channelsUpgrade",
        "registerMcpWorkspace",
        "mcpWorkspaceChannel",
        "deregisterMcpWorkspace",
    ):
        assert report.get(op, {}).get("ok"), op


def assert_server_gone(kc: KcServer) -> None:
    children = psutil.Process(kc.proc.pid).children(recursive=True)
    assert kc.wait(WAIT) == 0, kc.output()[-3000:]
    deadline = time.monotonic() + WAIT
    for child in children:  # the kernels, shut down by POST /shutdown
        while psutil.pid_exists(child.pid) and child.status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, f"kernel {child.pid} left behind"
            time.sleep(0.1)


def test_positron_client_over_tcp(driver, kc):
    state = kc.start_like_positron("tcp")  # the handshake: what Positron receives
    assert not kc.token_file.exists()
    assert_exercised(run_driver(driver, state, kc))
    assert_server_gone(kc)


def test_positron_client_over_a_unix_socket(driver, kc, tmp_path):
    """The socket transport, with the connection file read as Positron reads a server state."""
    connection_file = tmp_path / "connection.json"
    kc.token_file.write_text(kc.token)
    kc.launch(
        [
            "--token",
            str(kc.token_file),
            "--log-level",
            "warn",
            "--log-file",
            str(kc.log_file),
            "--connection-file",
            str(connection_file),
            "--resource-sample-interval",
            "1000",
            "--transport",
            "socket",
            "--socket-dir",
            str(kc.socket_dir),
        ]
    )
    deadline = time.monotonic() + WAIT
    while not connection_file.exists():
        assert kc.proc.poll() is None and time.monotonic() < deadline, kc.output()[-3000:]
        time.sleep(0.1)
    assert stat.S_IMODE(os.stat(connection_file).st_mode) == 0o600
    state = json.loads(connection_file.read_text())
    assert "base_path" not in state and state["socket_path"]
    assert_exercised(run_driver(driver, state, kc))
    assert_server_gone(kc)
    assert not list(kc.socket_dir.glob("*.sock"))  # the server's and the sessions' sockets
