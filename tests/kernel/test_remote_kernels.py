"""Kernels on other machines: gateway-provisioners' DistributedProvisioner over real SSH.

A private sshd (tests/support/sshd.py) on 127.0.0.2 plays the remote host: gateway-provisioners takes
that address as remote (it is not one of this machine's interfaces), so it launches the kernel
with paramiko over SSH, exactly as onto another machine. The kernelspecs come from
gateway-provisioners' own ``jupyter ssh-spec install``. The server is a real ``jupyter
session-ext`` subprocess. Since the "remote" host is this machine, the tests can check what
happened to the kernel's process by the pid its provisioner reports — and every kernel is
cleaned up by that pid at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from jupyter_client.kernelspec import KernelSpecManager

from session_ext.kernel.provisioning import launches_locally

from ..support.helpers import WAIT, OpenAPI, StandaloneServer
from ..support.sshd import Sshd, SshdUnavailable

JUPYTER = str(Path(sys.executable).with_name("jupyter"))


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_for(predicate, timeout: float = WAIT, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    try:
        server.start()
        server.run("true")  # a login works (our key, our known_hosts)
    except SshdUnavailable as e:
        server.stop()
        if os.environ.get("SESSION_EXT_REQUIRE_SSHD"):  # set by .ci/run: it must run there
            pytest.fail(f"no private sshd here: {e}")
        pytest.skip(f"no private sshd here: {e}")
    yield server
    server.stop()
    assert server.proc.poll() is not None


def install_ssh_spec(data_dir: Path, name: str, host: str, program: str) -> None:
    """gateway-provisioners' own installer; then argv[0] set to ``program`` (the installer
    writes `python`, which a non-login SSH shell would look up on its default PATH)."""
    subprocess.run(
        [
            JUPYTER,
            "ssh-spec",
            "install",
            "--user",
            f"--kernel-name={name}",
            f"--remote-hosts={host}",
            "--unauthorized-users=nobody",
            f"--display-name=SSH {host}",
        ],
        env={**os.environ, "JUPYTER_DATA_DIR": str(data_dir)},
        check=True,
        capture_output=True,
        timeout=60,
    )
    path = data_dir / "kernels" / name / "kernel.json"
    spec = json.loads(path.read_text())
    spec["argv"][0] = program
    path.write_text(json.dumps(spec, indent=1))


@pytest.fixture(scope="module")
def kernelspecs(sshd, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("jupyter-data")
    # Over SSH; argv[0] a program on the remote login's PATH only (not on this machine's).
    program = sshd.bin / "remote-python"
    program.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    program.chmod(0o755)
    install_ssh_spec(data_dir, "ssh_py", sshd.host, "remote-python")
    # gateway-provisioners launches on "localhost" itself (no SSH), with its own Popen arguments.
    install_ssh_spec(data_dir, "ssh_localhost", "localhost", sys.executable)
    return data_dir


class RemoteServer(StandaloneServer):
    """A server whose kernels run through a provisioner: it remembers every kernel's pid as
    its provisioner reports it, and the kernel's children (the launcher's listener, which
    can outlive a killed kernel), and kills them all at the end."""

    def __init__(self, workdir: Path, *args: str):
        super().__init__(workdir, *args)
        self.provisioner_pids: set[int] = set()
        self.processes: dict[int, psutil.Process] = {}

    def call(self, method, path, body=None, timeout=WAIT):
        code, result = super().call(method, path, body, timeout)
        if code == 200 and path.endswith(("/start", "/restart")):  # a new kernel: note it
            self.call("GET", path.rsplit("/", 1)[0])
        provisioner = result.get("provisioner") if isinstance(result, dict) else None
        if provisioner and provisioner.get("pid") and provisioner["pid"] not in self.processes:
            self.provisioner_pids.add(provisioner["pid"])
            try:  # (psutil's Process: never a later process that reuses the pid)
                kernel = psutil.Process(provisioner["pid"])
                for proc in [kernel, *kernel.children(recursive=True)]:
                    self.processes[proc.pid] = proc
            except psutil.Error:
                pass
        return code, result

    def cleanup(self) -> None:
        super().cleanup()
        for proc in self.processes.values():
            try:
                proc.kill()
            except psutil.Error:
                pass

    def leftovers(self) -> list[int]:
        return [
            pid
            for pid, proc in self.processes.items()
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        ]


@pytest.fixture
def server(tmp_path, sshd, kernelspecs, monkeypatch):
    """`jupyter session-ext` whose environment is what an SSH-distributed setup needs: the
    kernelspecs, gateway-provisioners' SSH port and response address, and a HOME whose
    ~/.ssh has our key and known_hosts (paramiko reads them from there)."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(kernelspecs))
    monkeypatch.setenv("HOME", str(sshd.home))
    monkeypatch.setenv("GP_SSH_PORT", str(sshd.port))
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")  # where launchers send connection info
    monkeypatch.setenv("GP_KERNEL_LOG_DIR", str(tmp_path))  # the kernels' output, on "the remote"
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # (launchers on localhost write files there)
    monkeypatch.delenv("GP_SOCKET_TIMEOUT", raising=False)  # session_ext's default is tested
    srv = RemoteServer(tmp_path, *(["--debug"] if os.environ.get("RK_DEBUG") else []))
    yield srv
    srv.cleanup()
    wait_for(lambda: not srv.leftovers(), 10, "every kernel process to be gone")


def start_session(server, session_id: str, kernel_name: str = "ssh_py", **fields) -> dict:
    server.ok("PUT", "sessions", {"session_id": session_id, "kernel_name": kernel_name, **fields})
    server.ok("POST", f"sessions/{session_id}/start", timeout=60)
    return server.ok("GET", f"sessions/{session_id}")


def execute(server, session_id: str, code: str, timeout: float = WAIT) -> dict:
    return server.ok("POST", f"sessions/{session_id}/execute", {"code": code}, timeout=timeout)


def value(server, session_id: str, code: str) -> str:
    return execute(server, session_id, code)["data"]["text/plain"]


def interrupted(server, session_id: str) -> dict:
    """Run a long sleep, interrupt it through the API; the execute's reply."""
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(execute, server, session_id, "import time; time.sleep(60)", 90)
        wait_for(
            lambda: server.ok("GET", f"sessions/{session_id}")["status"] == "busy", what="busy"
        )
        time.sleep(0.5)  # inside time.sleep
        server.ok("POST", f"sessions/{session_id}/interrupt")
        return running.result(timeout=WAIT)


def gone(pid: int) -> bool:
    """Exited and reaped (no zombie left)."""
    try:
        psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    return False


class StatusProbe:
    """GET /status over and over on a thread while the test does something else: how long
    each took says how long the server's event loop was blocked meanwhile."""

    def __init__(self, server: RemoteServer):
        self.server = server
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                self.server.call("GET", "status")
            except OSError:  # no answer within WAIT: blocked all that time
                pass
            self.latencies.append(time.perf_counter() - t0)
            self._stop.wait(0.05)

    def __enter__(self) -> StatusProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(WAIT + 5)


def assert_remote(model: dict, host: str) -> None:
    OpenAPI.load().validate_schema("ActiveSession", model)
    assert model["process_id"] is None and model["resource_usage"] is None
    placement = model["provisioner"]
    assert placement["name"] == "distributed-provisioner" and placement["local"] is False
    assert placement["host"] == host and isinstance(placement["pid"], int)


def test_which_provisioners_take_popen_arguments(kernelspecs, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(kernelspecs))
    ksm = KernelSpecManager()
    assert launches_locally(ksm.get_kernel_spec("python3"), None)
    assert not launches_locally(ksm.get_kernel_spec("ssh_py"), None)
    assert not launches_locally(ksm.get_kernel_spec("ssh_localhost"), None)


def test_a_kernel_over_ssh(server, sshd):
    server.start()
    model = start_session(server, "remote")
    assert_remote(model, sshd.host)
    pid = model["provisioner"]["pid"]
    # It is the process sshd started: its pid is the one the provisioner reports.
    assert value(server, "remote", "import os; os.getpid()") == str(pid)
    connection = value(server, "remote", "os.environ['SSH_CONNECTION']")
    assert connection.strip("'").split()[2:] == [sshd.host, str(sshd.port)]
    # argv[0] exists on the remote login's PATH only: the argv check did not apply.
    assert model["argv"][0] == "remote-python"
    local = start_session(server, "local", kernel_name="python3")
    OpenAPI.load().validate_schema("ActiveSession", local)
    assert local["process_id"] and local["provisioner"] == {
        "name": "local-provisioner",
        "local": True,
        "host": None,
        "pid": local["process_id"],
    }
    # Resources are sampled for the local kernel only (every second by default).
    wait_for(lambda: server.ok("GET", "sessions/local")["resource_usage"], what="a sample")
    assert server.ok("GET", "sessions/remote")["resource_usage"] is None

    # gateway-provisioners' response socket does not block the event loop (jupyter.py):
    # with its default GP_SOCKET_TIMEOUT this took a median 33 ms here, else 1-2 ms.
    latencies = []
    for _ in range(20):
        t0 = time.perf_counter()
        server.ok("GET", "status")
        latencies.append(time.perf_counter() - t0)
    assert sorted(latencies)[10] < 0.02, latencies

    reply = interrupted(server, "remote")
    assert reply["status"] == "error" and reply["error_name"] == "KeyboardInterrupt"
    execute(server, "remote", "x = 1")

    server.ok("POST", "sessions/remote/restart", timeout=60)
    restarted = server.ok("GET", "sessions/remote")
    assert_remote(restarted, sshd.host)
    new_pid = restarted["provisioner"]["pid"]
    assert new_pid != pid and value(server, "remote", "'x' in dir()") == "False"
    shut_down = [pid]  # a kernel asked to shut down exits some 30 s later (see below)

    server.ok("POST", "sessions/remote/kill", timeout=60)
    killed = server.ok("GET", "sessions/remote")
    assert killed["status"] == "exited" and killed["provisioner"] is None
    assert killed["exit_code"] is None  # a remote provisioner does not know it
    wait_for(lambda: not alive(new_pid), what="the killed kernel to exit")

    server.ok("POST", "sessions/remote/start", timeout=60)
    last_pid = server.ok("GET", "sessions/remote")["provisioner"]["pid"]
    server.ok("DELETE", "sessions/remote?force=true", timeout=60)
    assert server.call("GET", "sessions/remote")[0] == 404
    shut_down.append(last_pid)

    # The server's shutdown shuts remote kernels down too (their shutdown_request arrives).
    shut_down.append(start_session(server, "second")["provisioner"]["pid"])
    server.ok("POST", "shutdown")
    assert server.proc.wait(WAIT) == 0
    # Every kernel asked to shut down exits: after about 29 s with ipykernel 7, which waits
    # (0.01 s, 0.03 s, ... 10 s, first with SIGTERM, then SIGKILL) for its children to go,
    # and counts the launcher's listener, which has exited but which it never reaps.
    wait_for(lambda: not any(alive(p) for p in shut_down), 90, "the kernels to exit")


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_remote_kernel_survives_a_server_restart(server, sshd, how):
    server.start()
    before = start_session(server, "durable")
    pid = before["provisioner"]["pid"]
    execute(server, "durable", "survivor = 41 + 1")
    server.stop(how)
    assert alive(pid), "the kernel died with the server"

    server.start()
    after = server.reattached("durable")
    assert after["status"] == "idle" and after["kernel_id"] == before["kernel_id"]
    assert_remote(after, sshd.host)
    assert after["provisioner"]["pid"] == pid
    assert value(server, "durable", "survivor") == "42"
    # signals still go through the provisioner (its listener beside the kernel)
    reply = interrupted(server, "durable")
    assert reply["status"] == "error" and reply["error_name"] == "KeyboardInterrupt"
    assert value(server, "durable", "survivor") == "42"
    server.ok("POST", "sessions/durable/kill", timeout=60)
    assert server.ok("GET", "sessions/durable")["status"] == "exited"
    wait_for(lambda: not alive(pid), what="the killed kernel to exit")
    server.ok("POST", "shutdown")
    assert server.proc.wait(WAIT) == 0


def test_a_remote_kernel_killed_while_the_server_was_down(server):
    server.start()
    pid = start_session(server, "doomed", connection_timeout=5)["provisioner"]["pid"]
    server.stop(signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)  # only the kernel: its launcher's listener stays
    wait_for(lambda: not alive(pid), what="the kernel to die")

    server.start()
    after = wait_for(
        lambda: (m := server.ok("GET", "sessions/doomed"))["status"] == "exited" and m,
        what="the session to be exited",
    )
    assert after["exit_code"] is None or after["exit_code"] != 0
    assert after["process_id"] is None and after["resource_usage"] is None
    assert after["provisioner"] is None
    server.ok("POST", "sessions/doomed/start", timeout=60)  # and it can be started again
    assert value(server, "doomed", "1 + 1") == "2"
    server.ok("POST", "shutdown")
    assert server.proc.wait(WAIT) == 0


def test_a_kernel_gateway_provisioners_starts_on_localhost(server):
    """The provisioner passes its own stdout to Popen: session_ext must not pass one too.
    (Killed here; a graceful shutdown: the next test.)"""
    server.start()
    model = start_session(server, "here", kernel_name="ssh_localhost")
    assert_remote(model, "localhost")
    assert value(server, "here", "6 * 7") == "42"
    server.ok("POST", "sessions/here/kill", timeout=60)
    wait_for(lambda: not alive(model["provisioner"]["pid"]), what="the kernel to exit")
    server.ok("DELETE", "sessions/here")
    server.ok("POST", "shutdown")
    assert server.proc.wait(WAIT) == 0


def test_a_kernel_shut_down_on_localhost_does_not_block_the_server(server):
    """gateway-provisioners runs a kernel on localhost itself, and a graceful shutdown ends in
    its Popen.wait() — for good: ipykernel 7 under its launcher does not exit here after a
    shutdown request (it spins, polling its closed stdin). The server answers meanwhile (a
    restart and a delete, both graceful), and the kernels are ended after shutdown_wait (as
    jupyter_client ends a local kernel) and reaped."""
    server.start()
    first = start_session(server, "here", kernel_name="ssh_localhost")["provisioner"]["pid"]
    with StatusProbe(server) as probe:
        server.ok("POST", "sessions/here/restart", timeout=60)
        second = server.ok("GET", "sessions/here")["provisioner"]["pid"]
        assert second != first and value(server, "here", "6 * 7") == "42"
        server.ok("DELETE", "sessions/here?force=true", timeout=60)
    assert probe.latencies and max(probe.latencies) < 2, probe.latencies
    wait_for(lambda: gone(first) and gone(second), what="the kernels to be ended and reaped")
    server.ok("POST", "shutdown")
    assert server.proc.wait(WAIT) == 0
