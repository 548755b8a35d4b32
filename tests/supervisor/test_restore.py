"""A durable server restarted with many stored kernels: it hands its state over (Positron's
handshake, 10 s) before it re-attaches them; meanwhile the sessions are `starting`, and what
clients send them waits for their kernel. Real `session-ext-kcserver` processes launched as
Positron launches kcserver, SIGKILLed and started again; real ipykernel kernels."""

import asyncio
import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import tornado.httpclient
import tornado.websocket

from ..support.helpers import WAIT, Channel, http_json, kernel_event
from ..support.kcserver import KcServer

SESSIONS = 20
# A re-attach waits this long for a kernel that does not answer: a handshake that waited for
# the re-attaches would come after it, far past every wait of this test (how long the
# handshake takes is measured by benchmarks/restore_handshake.py, not asserted here).
CONNECTION_TIMEOUT = 120


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Client:
    """The API of a kcserver, from its server state."""

    def __init__(self, kc: KcServer, state: dict):
        self.kc = kc
        self.base = state["base_path"]

    def call(self, method, path, body=None, timeout=WAIT):
        return http_json(method, f"{self.base}/{path}", self.kc.token, body, timeout)

    def ok(self, method, path, body=None, timeout=WAIT):
        code, value = self.call(method, path, body, timeout)
        assert code == 200, (method, path, code, value)
        return value

    async def channel(self, session_id) -> Channel:
        request = tornado.httpclient.HTTPRequest(
            f"{self.base}/sessions/{session_id}/channels".replace("http", "ws", 1),
            headers={"Authorization": f"Bearer {self.kc.token}"},
        )
        conn = await asyncio.wait_for(tornado.websocket.websocket_connect(request), WAIT)
        return Channel(conn)


def message(msg_type, content=None, channel="shell"):
    return {
        "kind": "jupyter",
        "channel": channel,
        "header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "version": "5.3"},
        "parent_header": {},
        "metadata": {},
        "content": content or {},
        "buffers": [],
    }


def execute(code):
    return message(
        "execute_request",
        {"code": code, "silent": False, "store_history": True, "user_expressions": {}},
    )


def start_sessions(api: Client) -> dict[str, int]:
    """SESSIONS started sessions, each holding its own value; {session_id: kernel pid}."""

    def start(i):
        session_id = f"s{i}"
        api.ok(
            "PUT",
            "sessions",
            {
                "session_id": session_id,
                "kernel_name": "python3",
                "connection_timeout": CONNECTION_TIMEOUT,
            },
        )
        api.ok("POST", f"sessions/{session_id}/start", timeout=120)
        api.ok("POST", f"sessions/{session_id}/execute", {"code": f"value = {i} * 7 + 1"})
        return session_id, api.ok("GET", f"sessions/{session_id}")["process_id"]

    with ThreadPoolExecutor(4) as pool:  # (2 cores: more at once only slows each start)
        return dict(pool.map(start, range(SESSIONS)))


async def queue_behind_running_cell(api: Client, session_id: str) -> None:
    """A cell running (in the kernel) and one queued behind it, acknowledged on disk."""
    channel = await api.channel(session_id)
    running = execute("import time; time.sleep(4); log = ['slept']")
    channel.send(running)
    await channel.until(lambda m: m.get("header", {}).get("msg_type") == "execute_input")
    queued = execute("log.append('queued')")
    channel.send(queued)
    await channel.until(lambda m: m.get("executionQueued") == queued["header"]["msg_id"])
    channel.close()


def statuses(api: Client) -> dict[str, str]:
    return {s["session_id"]: s["status"] for s in api.ok("GET", "sessions")["sessions"]}


@pytest.mark.timeout(600)
async def test_the_handshake_comes_before_the_kernels_are_reattached(tmp_path):
    kc = KcServer(tmp_path)
    pids: dict[str, int] = {}
    try:
        api = Client(kc, kc.start_like_positron("tcp"))
        pids = await asyncio.to_thread(start_sessions, api)
        await queue_behind_running_cell(api, "s2")
        kc.proc.kill()
        kc.wait()
        # Kernels that cannot answer (stopped): re-attaching any of them takes until they do
        for pid in pids.values():
            os.kill(pid, signal.SIGSTOP)

        # The handshake comes while no kernel can answer: before any re-attach is done.
        api = Client(kc, kc.start_like_positron("tcp"))
        assert statuses(api) == {session_id: "starting" for session_id in pids}
        session = api.ok("GET", "sessions/s1")
        assert session["reason"] == "reattach" and session["execution_queue"]["length"] == 0
        assert api.ok("GET", "sessions/s2")["execution_queue"]["length"] == 1  # still queued

        # Positron restoring a session (connect, ask for kernel_info, run code) and a REST
        # execute meanwhile: all wait for the kernel.
        channel = await api.channel("s0")
        kernel_info, ran = message("kernel_info_request"), execute("value")
        channel.send(kernel_info)
        channel.send(ran)
        rest = asyncio.ensure_future(
            asyncio.to_thread(api.call, "POST", "sessions/s1/execute", {"code": "value"}, 120)
        )

        for pid in pids.values():
            os.kill(pid, signal.SIGCONT)
        assert not [m for m in channel.received if m.get("kind") == "kernel" and "error" in m]
        reply = await channel.reply_to(kernel_info["header"]["msg_id"], timeout=60)
        assert reply["content"]["status"] == "ok"
        assert reply["content"]["language_info"]["name"] == "python"
        result = await channel.until(
            lambda m: (
                m.get("header", {}).get("msg_type") == "execute_result"
                and m["parent_header"]["msg_id"] == ran["header"]["msg_id"]
            ),
            timeout=60,
        )
        assert result["content"]["data"]["text/plain"] == "1"
        channel.close()
        code, body = await rest
        assert code == 200 and body["data"]["text/plain"] == "8", body

        deadline = time.monotonic() + 120
        while set(statuses(api).values()) != {"idle"}:
            assert time.monotonic() < deadline, statuses(api)
            await asyncio.sleep(0.5)
        for i in range(SESSIONS):
            session_id = f"s{i}"
            assert api.ok("GET", f"sessions/{session_id}")["process_id"] == pids[session_id]
            reply = api.ok("POST", f"sessions/{session_id}/execute", {"code": "value"})
            assert reply["data"]["text/plain"] == str(i * 7 + 1)
            history = api.ok("GET", f"sessions/{session_id}/history")
            assert history[0]["input"] == f"value = {i} * 7 + 1"
        # the stored queue ran once, in order, after the cell the kernel was running
        log = api.ok("POST", "sessions/s2/execute", {"code": "log"})["data"]["text/plain"]
        assert log == "['slept', 'queued']"

        api.ok("POST", "shutdown")
        assert kc.wait(60) == 0
        deadline = time.monotonic() + WAIT
        while any(alive(pid) for pid in pids.values()):
            assert time.monotonic() < deadline, "a kernel outlived the shutdown"
            await asyncio.sleep(0.2)
    finally:
        kc.cleanup()
        for pid in pids.values():  # ours (durable kernels outlive the server that started them)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


# --- the hold itself, in-process: a session told to hold what clients send, as a restored
# session is until its kernel is re-attached (the kernel here is running all along)


async def test_what_clients_send_while_held_goes_to_the_kernel_in_order(api, supervisor):
    session_id = await api.started()
    session = supervisor.get(session_id)
    session.hold_client_messages()
    ws = await api.channels(session_id)
    first = ws.execute("x = 1")
    info = message("kernel_info_request")
    ws.send(info)
    second = ws.execute("x + 1")
    rest = asyncio.ensure_future(api.execute(session_id, "x * 10"))
    # (nothing to wait on: held requests show nowhere, so give them time to arrive)
    await asyncio.sleep(1)
    assert not rest.done()
    assert (await api.ok("GET", f"sessions/{session_id}/queue"))["length"] == 0
    assert await api.ok("GET", f"sessions/{session_id}/history") == []
    assert not [m for m in ws.received if m.get("kind") == "kernel" and "error" in m]

    session.release_client_messages()
    assert (await ws.reply_to(first))["content"]["status"] == "ok"
    assert (await ws.reply_to(info["header"]["msg_id"]))["content"]["status"] == "ok"
    result = await ws.until(
        lambda m: (
            m.get("header", {}).get("msg_type") == "execute_result"
            and m["parent_header"]["msg_id"] == second
        )
    )
    assert result["content"]["data"]["text/plain"] == "2"
    assert (await rest)["data"]["text/plain"] == "10"  # after them: x was set
    history = await api.ok("GET", f"sessions/{session_id}/history")
    assert [h["input"] for h in history] == ["x = 1", "x + 1", "x * 10"]
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_what_was_held_for_a_kernel_that_never_came_is_refused(api, supervisor):
    """As when a restored session's kernel died while the server was down."""
    session_id = await api.started()
    session = supervisor.get(session_id)
    session.hold_client_messages()
    ws = await api.channels(session_id)
    ws.execute("1")
    rest = asyncio.ensure_future(api.call("POST", f"sessions/{session_id}/execute", {"code": "1"}))
    await api.ok("POST", f"sessions/{session_id}/kill")
    await api.wait_status(session_id, "exited")
    session.release_client_messages()
    error = await ws.until(kernel_event("error"))
    assert error["error"]["code"] == "KS-3" and "not running" in error["error"]["message"]
    refused = await rest
    assert refused.code == 409 and "not running" in refused.json["message"]
    assert await api.ok("GET", f"sessions/{session_id}/history") == []
    ws.close()
