"""session_ext.client against a real `jupyter session-ext` (a subprocess) and real kernels:
the asynchronous and the blocking API, of one shape."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from session_ext.client import (
    ApiError,
    AsyncSupervisor,
    NotFound,
    ServerNotFound,
    Supervisor,
    Unauthorized,
    discovery,
)

from ..support.helpers import WAIT
from ..support.kcserver import KcServer

# Three lines a second apart, stdout and stderr taking turns, then a result.
SLOW = (
    "import sys, time\n"
    "for i in range(3):\n"
    "    print('out', i, flush=True)\n"
    "    print('err', i, file=sys.stderr, flush=True)\n"
    "    time.sleep(0.4)\n"
    "6 * 7"
)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_async_streaming_order_and_reply(supervisor_server):
    async def go():
        async with AsyncSupervisor.from_connection_file(supervisor_server.connection_file) as sv:
            session = await sv.create_session("python3", start=True)
            execution = session.execute(SLOW)
            seen = []
            async for output in execution:
                seen.append((time.monotonic(), output))
            reply = await execution
            return seen, reply

    seen, reply = run(go())
    items = [o for _, o in seen]
    assert [(o["output_type"], o.get("name"), o.get("text")) for o in items[:6]] == [
        ("stream", name, f"{name[3:]} {i}\n") for i in range(3) for name in ("stdout", "stderr")
    ]
    assert items[-1]["output_type"] == "execute_result"
    assert items[-1]["data"] == {"text/plain": "42"}
    # as they arrived: the last line came about 0.8 s after the first
    assert seen[4][0] - seen[0][0] > 0.5
    assert reply.status == "ok" and reply.execution_count == 1
    assert reply.stdout == "out 0\nout 1\nout 2\n" and reply.stderr == "err 0\nerr 1\nerr 2\n"
    assert reply.outputs[-1] == {
        "output_type": "execute_result",
        "data": {"text/plain": "42"},
        "metadata": {},
        "execution_count": 1,
    }


def test_async_stdin_error_and_callback(supervisor_server):
    async def go():
        async with AsyncSupervisor.from_connection_file(supervisor_server.connection_file) as sv:
            session = await sv.create_session("python3", start=True)
            prompts = []

            async def answer(prompt, password):
                prompts.append((prompt, password))
                return "bob"

            greeted = await session.execute("print('hi', input('name? '))", stdin=answer)
            streamed = []
            failed = await session.execute("1 / 0", on_output=streamed.append)
            refused = await session.execute("input('no stdin here')")
            return prompts, greeted, failed, streamed, refused

    prompts, greeted, failed, streamed, refused = run(go())
    assert prompts == [("name? ", False)]
    assert greeted.stdout == "hi bob\n"
    assert failed.status == "error" and failed.error.ename == "ZeroDivisionError"
    assert streamed == failed.outputs and streamed[0]["output_type"] == "error"
    assert refused.status == "error" and refused.error.ename == "StdinNotImplementedError"


def test_async_cancelled_and_interrupted_requests(supervisor_server):
    async def go():
        async with AsyncSupervisor.from_connection_file(supervisor_server.connection_file) as sv:
            session = await sv.create_session("python3", start=True)
            running = session.execute("import time\ntime.sleep(30)")
            waiting = session.execute("print('never')")
            await asyncio.wait_for(running.started.wait(), WAIT)
            await asyncio.wait_for(waiting.accepted.wait(), WAIT)
            assert waiting.queued and not waiting.started.is_set()
            queue = await session.queue()
            assert queue.position(waiting.msg_id) == 1 and queue.active.msg_id == running.msg_id
            await waiting.cancel()  # waiting: cancelled
            cancelled = await waiting
            await running.cancel()  # running: interrupted
            interrupted = await running
            after = await session.execute("print('still here')")
            history = await session.history(10)
            return cancelled, interrupted, after, history, await session.info()

    cancelled, interrupted, after, history, info = run(go())
    assert cancelled.status == "aborted" and cancelled.outputs == []
    assert interrupted.status == "error" and interrupted.error.ename == "KeyboardInterrupt"
    assert after.stdout == "still here\n"
    statuses = {e.input: (e.status, e.raw.get("reason")) for e in history}
    assert statuses["print('never')"] == ("aborted", "cancelled")
    assert statuses["import time\ntime.sleep(30)"][0] == "error"
    assert info.status == "idle" and info.queue_length == 0


def test_async_cells_events_and_lifecycle(supervisor_server):
    async def go():
        async with AsyncSupervisor.from_connection_file(supervisor_server.connection_file) as sv:
            async with sv.events() as events:
                session = await sv.create_session(
                    "python3", session_mode="notebook", display_name="nb", start=True
                )
                reply = await session.execute("print('cell')", cell_id="c1")
                cells = await session.cells()
                listed = [s.session_id for s in await sv.list_sessions()]
                await session.restart()
                await session.kill()
                await session.delete()
                seen = []
                async for event in events:
                    seen.append(event)
                    if event.event == "session_deleted":
                        break
            return session.session_id, reply, cells, listed, seen

    session_id, reply, cells, listed, seen = run(go())
    assert reply.ok and session_id in listed
    assert [(c.cell_id, c.msg_id, c.status, c.outputs) for c in cells] == [
        ("c1", reply.msg_id, "ok", [{"output_type": "stream", "name": "stdout", "text": "cell\n"}])
    ]
    assert seen[0].event == "snapshot"
    statuses = [e.raw["status"] for e in seen if e.event == "status" and e.session_id == session_id]
    assert statuses[:2] == ["starting", "idle"] and "exited" in statuses
    assert seen[-1].event == "session_deleted" and seen[-1].session_id == session_id


def test_errors_carry_the_servers_code_and_message(supervisor_server):
    async def go():
        endpoint = discovery.from_connection_file(supervisor_server.connection_file)
        async with AsyncSupervisor(endpoint) as sv:
            with pytest.raises(NotFound) as missing:
                await sv.get_session("nope")
            with pytest.raises(ApiError) as bad:
                await sv.create_session("python3", session_id="bad/id")
            session = await sv.create_session("python3")
            with pytest.raises(ApiError) as not_running:
                await session.interrupt()
        async with AsyncSupervisor(endpoint.api_url, "wrong") as sv:
            with pytest.raises(Unauthorized) as refused:
                await sv.list_sessions()
        async with AsyncSupervisor("http://127.0.0.1:9", "x") as sv:
            with pytest.raises(ServerNotFound):
                await sv.status()
        return missing.value, bad.value, not_running.value, refused.value

    missing, bad, not_running, refused = run(go())
    assert (missing.status, missing.code) == (404, "KS-1") and "nope" in missing.message
    assert bad.status == 400 and "session_id" in bad.message
    assert (not_running.status, not_running.code) == (400, "KS-3")
    assert refused.status == 401 and refused.code == "unauthorized"


def test_sync_api_has_the_same_shape(supervisor_server):
    with Supervisor.from_connection_file(supervisor_server.connection_file) as sv:
        assert sv.status().server_id == supervisor_server.info["server_id"]
        session = sv.create_session("python3", start=True)
        execution = session.execute(SLOW)
        items = list(execution)
        reply = execution.result()
        assert [o.get("text") for o in items[:2]] == ["out 0\n", "err 0\n"]
        assert reply.status == "ok" and reply.result == {"text/plain": "42"}

        asked = session.execute("print(input('? ') * 2)", stdin=lambda prompt, password: "ab")
        assert asked.result(WAIT).stdout == "abab\n"

        running = session.execute("import time\ntime.sleep(30)")
        waiting = session.execute("print('never')")
        deadline = time.monotonic() + WAIT
        while not (running.started and waiting.queued) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r.msg_id for r in session.queue().pending] == [waiting.msg_id]
        session.cancel(waiting.msg_id)
        assert waiting.result(WAIT).status == "aborted"
        running.cancel()
        assert running.result(WAIT).error.ename == "KeyboardInterrupt"
        assert [e.status for e in session.history(3)] == ["ok", "aborted", "error"]
        with sv.events() as events:
            first = next(iter(events))
        assert first.event == "snapshot"
        assert session.session_id in [s["session_id"] for s in first.raw["sessions"]]
        session.delete(force=True)
        with pytest.raises(NotFound):
            sv.get_session(session.session_id)


def test_discovery_finds_the_running_server(supervisor_server, monkeypatch, tmp_path):
    for name in (discovery.URL_ENV, discovery.TOKEN_ENV, discovery.CONNECTION_FILE_ENV):
        monkeypatch.delenv(name, raising=False)
    runtime = str(supervisor_server.runtime_dir)
    found = discovery.find_servers(runtime)
    assert [(e.api_url, e.token) for e, _ in found] == [
        (supervisor_server.info["base_path"], supervisor_server.token)
    ]
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", runtime)
    with Supervisor.discover() as sv:
        assert sv.status().server_id == supervisor_server.info["server_id"]
    # a dead server's file, a foreign jpserver file: not servers
    (tmp_path / "jpserver-999999.json").write_text(json.dumps({"pid": 999999, "url": "http://x/"}))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    with pytest.raises(ServerNotFound, match="No running Jupyter server"):
        Supervisor.discover()
    monkeypatch.setenv(discovery.CONNECTION_FILE_ENV, str(supervisor_server.connection_file))
    with Supervisor.discover() as sv:
        assert sv.endpoint.source.startswith("connection file")


def test_over_a_unix_socket_from_kallichores_server_state(tmp_path):
    """`session-ext-kcserver --transport socket`, as Positron starts it: the client reaches
    the API and the channels through the unix socket of its server state."""
    server = KcServer(tmp_path)
    try:
        state = server.start_like_positron("socket")
        assert state["transport"] == "socket"
        (tmp_path / "state.json").write_text(json.dumps(state))

        async def go():
            async with AsyncSupervisor.from_connection_file(tmp_path / "state.json") as sv:
                assert (await sv.status()).server_id == state["server_id"]
                session = await sv.create_session("python3", start=True)
                reply = await session.execute("print(1 + 1)")
                await session.delete(force=True)
                return reply

        assert run(go()).stdout == "2\n"
    finally:
        server.cleanup()
