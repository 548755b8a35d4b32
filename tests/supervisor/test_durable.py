"""Durable sessions: persisted in sqlite, kernels outliving a stopped or killed server."""

import asyncio
import os
import signal
import time

import psutil
import pytest
import tornado.httpclient
import tornado.websocket

from session_ext.store.database import SessionStore

from ..support.helpers import WAIT, Channel, StandaloneServer


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


async def queue_behind(server, session_id, first, then):
    """Send ``first``, then ``then`` behind it, over the channels websocket; return once each
    of these is acknowledged (``executionQueued``: on disk) and ``first`` runs."""
    request = tornado.httpclient.HTTPRequest(
        server.url(f"sessions/{session_id}/channels").replace("http", "ws", 1),
        headers={"Authorization": f"Bearer {server.info['bearer_token']}"},
    )
    channel = Channel(await asyncio.wait_for(tornado.websocket.websocket_connect(request), WAIT))
    running = channel.execute(first)
    await channel.until(
        lambda m: m.get("channel") == "iopub" and m["header"]["msg_type"] == "execute_input"
    )
    for code in then:
        msg_id = channel.execute(code)
        await channel.until(lambda m, i=msg_id: m.get("executionQueued") == i)
    return channel, running


def history_of(server, session_id, count):
    wait_for(lambda: len(server.ok("GET", f"sessions/{session_id}/history")) >= count)
    return server.ok("GET", f"sessions/{session_id}/history")


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_the_queue_survives_a_server_restart(server, how):
    server.start()
    start_session(server, "queued")
    server.ok("POST", "sessions/queued/execute", {"code": "ran = []"})
    appends = [f"ran.append({i})" for i in (1, 2, 3)]
    channel, _ = await queue_behind(
        server, "queued", "import time; time.sleep(4); ran.append(0)", appends
    )
    server.stop(how)
    channel.close()

    server.start()
    history = history_of(server, "queued", 5)
    assert [h["input"] for h in history][2:] == appends
    assert [h["status"] for h in history][2:] == ["ok"] * 3
    running = history[1]
    assert running["input"].startswith("import time")
    # Its reply came to the new server, or it finished before the server was back.
    assert running["status"] == "ok" or "finished while the server was down" in running["reason"]
    assert server.ok("POST", "sessions/queued/execute", {"code": "ran"})["data"]["text/plain"] == (
        "[0, 1, 2, 3]"
    )  # each ran exactly once, in order
    server.ok("POST", "shutdown")
    assert server.proc.wait(30) == 0


async def test_a_long_request_keeps_running_across_a_restart(server):
    """The re-attach handshake does not wait behind the running cell (nor kill the kernel
    after connection_timeout): the cell's outcome and later output land in the history."""
    server.start()
    before = start_session(server, "long", connection_timeout=3)
    server.ok("POST", "sessions/long/execute", {"code": "ran = []"})
    code = "import time; time.sleep(10); print('slept'); ran.append(0)"
    channel, _ = await queue_behind(server, "long", code, ["ran.append(1)"])
    server.stop(signal.SIGKILL)
    channel.close()

    server.start()
    after = server.reattached("long")
    assert after["process_id"] == before["process_id"]
    assert after["status"] == "busy" and after["execution_queue"]["length"] == 1
    history = history_of(server, "long", 3)
    assert [(h["input"], h["status"]) for h in history[1:]] == [
        (code, "ok"),
        ("ran.append(1)", "ok"),
    ]
    assert history[1]["output"] == "slept\n"
    assert (
        server.ok("POST", "sessions/long/execute", {"code": "ran"})["data"]["text/plain"]
        == "[0, 1]"
    )
    server.ok("POST", "shutdown")
    assert server.proc.wait(30) == 0


async def test_a_request_that_finished_while_the_server_was_down(server):
    server.start()
    start_session(server, "missed")
    server.ok("POST", "sessions/missed/execute", {"code": "ran = []"})
    channel, _ = await queue_behind(
        server, "missed", "import time; time.sleep(2); ran.append(0)", ["ran.append(1)"]
    )
    server.stop(signal.SIGKILL)
    channel.close()
    await asyncio.sleep(2.5)  # it finishes meanwhile: its reply goes nowhere

    server.start()
    history = history_of(server, "missed", 3)
    assert history[1]["status"] == "aborted"
    assert "finished while the server was down" in history[1]["reason"]
    assert (history[2]["input"], history[2]["status"]) == ("ran.append(1)", "ok")
    assert (
        server.ok("POST", "sessions/missed/execute", {"code": "ran"})["data"]["text/plain"]
        == "[0, 1]"
    )
    assert server.ok("GET", "sessions/missed")["status"] == "idle"
    server.ok("POST", "shutdown")
    assert server.proc.wait(30) == 0


async def test_the_store_keeps_the_queue(tmp_path):
    store = SessionStore(str(tmp_path / "s.db"), history_size=10)
    msg = {"header": {"msg_id": "a"}, "content": {"code": "1"}, "buffers": [b"\x00\x01"]}
    record = {"msg": msg, "source": "rest", "queued_at": 1}
    await store.save("s", {"spec": {"session_id": "s"}})
    await store.write_batch([], [("s", "a", record), ("s", "b", {**record, "queued_at": 2})])
    await store.write_batch([], [], [("s", "a", 5)])
    ((_, _, queued),) = await store.load()
    assert [(q["msg_id"], q["started_at"]) for q in queued] == [("a", 5), ("b", None)]
    assert queued[0]["request"]["msg"]["buffers"] == ["AAE="]
    # a history entry takes its request out of the queue, in the same transaction
    await store.write_batch([("s", {"msg_id": "a", "status": "ok"})])
    ((_, history, queued),) = await store.load()
    assert [q["msg_id"] for q in queued] == ["b"] and history == [{"msg_id": "a", "status": "ok"}]
    # in one batch a request can arrive and be aborted: no row is left
    await store.write_batch([("s", {"msg_id": "c"})], [("s", "c", record)])
    assert [q["msg_id"] for q in (await store.load())[0][2]] == ["b"]
    store.delete("s")
    assert await store.load() == []
    await store.close()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_sessions_and_kernels_survive_a_server_restart(server, how):
    server.start()
    before = start_session(server, "durable-1", tags=["keep"], metadata={"k": "v"})
    server.ok("POST", "sessions/durable-1/execute", {"code": "survivor = 41 + 1"})
    server.ok("PUT", "sessions", {"session_id": "never-started", "kernel_name": "python3"})
    server.stop(how)
    assert alive(before["process_id"]), "the kernel died with the server"

    server.start()
    after = server.reattached("durable-1")
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
    after = server.reattached("doomed")
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
