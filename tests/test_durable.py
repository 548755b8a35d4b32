"""Durable sessions: persisted in sqlite, kernels outliving a stopped or killed server."""

import os
import signal
import time

import psutil
import pytest

from .helpers import StandaloneServer


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_for(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def start_session(server, session_id, **fields):
    server.ok("PUT", "sessions", {"session_id": session_id, "kernel_name": "python3", **fields})
    server.ok("POST", f"sessions/{session_id}/start", timeout=60)
    return server.ok("GET", f"sessions/{session_id}")


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_sessions_and_kernels_survive_a_server_restart(server, how):
    server.start()
    before = start_session(server, "durable-1", tags=["keep"], metadata={"k": "v"})
    server.ok("POST", "sessions/durable-1/execute", {"code": "survivor = 41 + 1"})
    server.ok("PUT", "sessions", {"session_id": "never-started", "kernel_name": "python3"})
    server.stop(how)
    assert alive(before["process_id"]), "the kernel died with the server"

    server.start()
    after = server.ok("GET", "sessions/durable-1")
    assert after["status"] == "idle"
    assert after["kernel_id"] == before["kernel_id"] and after["process_id"] == before["process_id"]
    assert after["tags"] == ["keep"] and after["metadata"] == {"k": "v"}
    reply = server.ok("POST", "sessions/durable-1/execute", {"code": "survivor"})
    assert reply["data"]["text/plain"] == "42"
    history = server.ok("GET", "sessions/durable-1/history")
    assert [h["input"] for h in history] == ["survivor = 41 + 1", "survivor"]
    assert server.ok("GET", "sessions/never-started")["status"] == "uninitialized"
    # the re-adopted kernel is fully controllable: interrupt, restart, and it shows in /api/kernels
    server.ok("POST", "sessions/durable-1/interrupt")
    server.ok("POST", "sessions/durable-1/restart", timeout=60)
    new_pid = server.ok("GET", "sessions/durable-1")["process_id"]
    assert new_pid != before["process_id"] and not alive(before["process_id"])
    server.ok("POST", "shutdown")
    assert server.proc.wait(30) == 0
    assert not alive(new_pid)


def test_a_kernel_that_died_while_the_server_was_down_is_exited(server):
    server.start()
    before = start_session(server, "doomed")
    server.stop(signal.SIGKILL)
    os.kill(before["process_id"], signal.SIGKILL)
    wait_for(lambda: not alive(before["process_id"]))
    server.start()
    after = server.ok("GET", "sessions/doomed")
    assert after["status"] == "exited" and "server was down" in after["reason"]
    assert after["process_id"] is None
    server.ok("POST", "sessions/doomed/start", timeout=60)  # and it can be started again
    server.ok("POST", "shutdown")
    server.proc.wait(30)


def test_shutdown_leaves_no_kernel_behind(server):
    server.start()
    pids = [start_session(server, f"s{i}")["process_id"] for i in range(2)]
    server.ok("POST", "shutdown")
    assert server.proc.wait(30) == 0
    wait_for(lambda: not any(alive(p) for p in pids), timeout=10)
    server.start()  # the sessions are still listed, as exited
    sessions = server.ok("GET", "sessions")["sessions"]
    assert sorted(s["session_id"] for s in sessions) == ["s0", "s1"]
    assert {s["status"] for s in sessions} == {"exited"}
    server.ok("POST", "shutdown")
    server.proc.wait(30)


def test_without_persistence_nothing_is_kept_and_no_kernel_is_left(tmp_path):
    server = StandaloneServer(tmp_path, "--SessionExtApp.db_path=:memory:")
    try:
        server.start()
        pid = start_session(server, "ephemeral")["process_id"]
        server.stop(signal.SIGTERM)
        wait_for(lambda: not alive(pid), timeout=10)
        server.start()
        assert server.ok("GET", "sessions")["total"] == 0
        assert not (tmp_path / "runtime" / "session_ext.db").exists()
        server.ok("POST", "shutdown")
        server.proc.wait(30)
    finally:
        server.cleanup()


def test_idle_shutdown_stops_an_idle_standalone_server(server):
    server.start()
    start_session(server, "idle-one")
    began = time.monotonic()
    server.ok("POST", "server_configuration", {"idle_shutdown_hours": 0})
    # 0 hours means "after 30 s of idleness", as in Kallichore (not at once)
    assert server.proc.wait(60) == 0
    assert time.monotonic() - began >= 29
    assert "No activity" in server.log_text()
