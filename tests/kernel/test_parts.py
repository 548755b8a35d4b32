"""The session's parts alone, without a server: KernelProcess with a real ipykernel, the
MessageRouter wired to it (its queue, replies to the requester, aborts), REST execute and
the status clock. Clients and listeners here are recorders of our own protocols; the kernel
and jupyter_client are real."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import uuid

import psutil
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

from session_ext.core.config import SupervisorConfig
from session_ext.core.errors import StartupError
from session_ext.core.requests import ExecuteRequest
from session_ext.core.spec import SessionSpec
from session_ext.kernel.launch import kernel_env
from session_ext.kernel.process import KernelProcess
from session_ext.session.execute import ExecuteTimeout, execute
from session_ext.session.router import MessageRouter
from session_ext.session.status import StatusMachine

from ..support.helpers import IPYKERNEL_ARGV, WAIT


def spec(argv=IPYKERNEL_ARGV, **fields) -> SessionSpec:
    return SessionSpec(
        session_id=f"part-{uuid.uuid4().hex[:8]}",
        display_name="Python",
        language="python",
        username="tester",
        input_prompt=">>> ",
        continuation_prompt="... ",
        argv=list(argv),
        session_mode="console",
        working_directory=fields.pop("cwd", "/tmp"),
        env=[],
        interrupt_mode="signal",
        startup_environment="none",
        connection_timeout=20,
        **fields,
    )


@pytest.fixture
def config(tmp_path):
    return SupervisorConfig(
        runtime_dir=str(tmp_path),
        server_root=str(tmp_path),
        username="tester",
        heartbeat_interval=0.5,
        heartbeat_timeout=2.0,
        shutdown_wait=3.0,
    )


@pytest.fixture
def mkm(tmp_path):
    return AsyncMappingKernelManager(
        connection_dir=str(tmp_path),
        root_dir=str(tmp_path),
        kernel_spec_manager=KernelSpecManager(),
    )


class Recorder:
    """A websocket client and a RouterListener, remembering what reached it."""

    def __init__(self):
        self.frames: list[dict] = []
        self.events: list[tuple] = []

    def send_frame(self, frame: bytes, routed: bool = False) -> bool:
        self.frames.append(json.loads(frame))
        return True

    def deliver(self, msg) -> None:
        self.frames.append(json.loads(msg.frame))

    def close_displaced(self, reason: str) -> None:
        self.events.append(("displaced", reason))

    def __getattr__(self, name):  # the RouterListener callbacks
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self.events.append((name, *args))

    def reply(self, msg_id: str) -> dict | None:
        for f in self.frames:
            if f.get("channel") == "shell" and f["parent_header"].get("msg_id") == msg_id:
                return f
        return None

    async def until(self, found, timeout: float = WAIT):
        deadline = time.monotonic() + timeout
        while not (result := found(self)):
            assert time.monotonic() < deadline, f"not received: {self.frames[-5:]}"
            await asyncio.sleep(0.02)
        return result

    async def until_reply(self, msg_id: str) -> dict:
        return await self.until(lambda r: r.reply(msg_id))


async def launched(kernel: KernelProcess) -> dict:
    deadline = time.monotonic() + kernel.spec.connection_timeout
    return await kernel.launch(kernel.spec.working_directory, kernel_env([], ()), deadline)


@contextlib.asynccontextmanager
async def wired(config, mkm, durable=False):
    """A KernelProcess and a MessageRouter, wired as ActiveSession wires them."""
    kernel = KernelProcess(uuid.uuid4().hex, spec(), config, mkm)
    listener = Recorder()
    router = MessageRouter(config, kernel, listener, durable=durable)
    kernel.on_message = router.kernel_message
    await launched(kernel)
    router.kernel_ready()
    try:
        yield kernel, router, listener
    finally:
        await kernel.stop(now=True)
        kernel.closed()


async def test_kernel_process_alone(config, mkm):
    kernel = KernelProcess(uuid.uuid4().hex, spec(), config, mkm)
    received = []
    kernel.on_message = received.append
    info = await launched(kernel)
    assert info["status"] == "ok" and info["language_info"]["name"] == "python"
    assert psutil.Process(kernel.process_id).is_running()
    assert kernel.kernel_id in mkm  # registered: /api/kernels would list it
    assert not any(m.msg_type == "kernel_info_reply" for m in received)  # the handshake's own
    assert kernel.conn.stdin_connected  # ready means an input_request can reach us too
    msg = kernel.msg_session.msg("execute_request", {"code": "print('hi')", "silent": False})
    kernel.send("shell", {**msg, "channel": "shell"})
    deadline = time.monotonic() + WAIT
    while not any(m.msg_type == "execute_reply" for m in received):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert any(m.msg_type == "stream" and m.content["text"] == "hi\n" for m in received)
    pid = kernel.process_id
    psutil.Process(pid).kill()
    deadline = time.monotonic() + WAIT
    while not await kernel.has_exited():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert kernel.exit_code() == -9
    await kernel.reap()
    kernel.closed()
    assert kernel.process_id is None and kernel.kernel_id not in mkm


async def test_kernel_start_failure_leaves_nothing(config, mkm):
    argv = [sys.executable, "-c", "import sys; print('bye'); sys.exit(3)"]
    kernel = KernelProcess(uuid.uuid4().hex, spec(argv), config, mkm)
    with pytest.raises(StartupError) as err:
        await launched(kernel)
    assert err.value.exit_code == 3 and "bye" in err.value.output
    assert kernel.process_id is None and not kernel.connected and kernel.kernel_id not in mkm


async def test_router_queues_and_routes_replies(config, mkm):
    async with wired(config, mkm) as (_kernel, router, listener):
        client, other = Recorder(), Recorder()
        router.attach(client)
        router.attach(other)
        ids = []
        for code in ("import time; time.sleep(1)", "x = 1", "print(x + 1)"):
            msg = router.new_message("shell", "execute_request", {"code": code, "silent": False})
            ids.append(msg["header"]["msg_id"])
            router.send_client_message(client, msg, source="websocket")
        assert [f.get("executionQueued") for f in client.frames if "executionQueued" in f] == ids[
            1:
        ]
        assert router.queue.active.msg_id == ids[0] and len(router.queue) == 2
        for msg_id in ids:
            assert (await client.until_reply(msg_id))["content"]["status"] == "ok"
        assert all(other.reply(msg_id) is None for msg_id in ids)  # replies: to the requester only
        assert any(f.get("content", {}).get("text") == "2\n" for f in other.frames)  # iopub: all
        deadline = time.monotonic() + WAIT
        while len(router.history) < 3:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert [e["msg_id"] for e in router.history] == ids
        assert router.history[-1]["output"] == "2\n"
        assert ("queue_changed",) in listener.events


async def test_router_aborts_pending_on_interrupt_and_exit(config, mkm):
    async with wired(config, mkm) as (kernel, router, _listener):
        client = Recorder()
        router.attach(client)
        ids = []
        for code in ("import time; time.sleep(30)", "1", "2"):
            msg = router.new_message("shell", "execute_request", {"code": code, "silent": False})
            ids.append(msg["header"]["msg_id"])
            router.send_client_message(client, msg, source="websocket")
        await client.until(
            lambda r: any(f.get("header", {}).get("msg_type") == "execute_input" for f in r.frames)
        )
        await kernel.interrupt()
        router.on_interrupted()
        for msg_id in ids[1:]:
            assert (await client.until_reply(msg_id))["content"]["status"] == "aborted"
        assert (await client.until_reply(ids[0]))["content"][
            "status"
        ] == "error"  # KeyboardInterrupt
        msg = router.new_message(
            "shell", "execute_request", {"code": "import time; time.sleep(30)"}
        )
        router.send_client_message(client, msg, source="websocket")
        router.kernel_gone(None, "killed")
        assert (await client.until_reply(msg["header"]["msg_id"]))["content"]["status"] == "aborted"
        assert {"kind": "kernel", "exited": None} in client.frames


async def test_durable_router_acknowledges_requests_once_stored(config, mkm):
    """Durable mode: a request joins the queue at once but is announced (executionQueued) or
    sent only once the listener says its row is on disk; it is sent only once its row is
    marked as the one sent."""
    async with wired(config, mkm, durable=True) as (_, router, listener):
        writes = {}  # msg_id -> [(queued, started, done)]
        listener.persist_request = lambda request, queued, started, done: writes.setdefault(
            request.msg_id, []
        ).append((queued, started, done))
        client = Recorder()
        router.attach(client)

        def send(code):
            msg = router.new_message("shell", "execute_request", {"code": code, "silent": False})
            router.send_client_message(client, msg, source="websocket")
            return msg["header"]["msg_id"]

        def queued_events():
            return [f["executionQueued"] for f in client.frames if "executionQueued" in f]

        a = send("import time; time.sleep(0.5)")
        b = send("'b'")
        assert [w[:2] for w in writes[a]] == [(True, True)]  # into an empty queue: sent once stored
        assert [w[:2] for w in writes[b]] == [(True, False)]
        assert router.queue.active is None and list(router.queue.pending) == [a, b]
        writes[b][0][2](True)
        assert queued_events() == [b] and router.queue.active is None  # a is not on disk yet
        writes[a][0][2](True)
        assert router.queue.active.msg_id == a and queued_events() == [b]
        await client.until_reply(a)
        await client.until(lambda r: writes[b][1:] or None)  # a finished: b is marked, then sent
        assert writes[b][1][:2] == (False, True) and router.queue.active is None
        writes[b][1][2](True)
        assert (await client.until_reply(b))["content"]["status"] == "ok"
        # interrupted before its row was written: aborted, and not announced afterwards
        c = send("'c'")
        router.on_interrupted()
        writes[c][0][2](True)
        assert router.queue.active is None and c not in router.queue
        # a row that cannot be written: aborted, with the reason in the history
        d = send("'d'")
        writes[d][0][2](False)
        assert (await client.until_reply(d))["content"]["status"] == "aborted"
        assert router.history[-1]["reason"] == "the session store could not be written"
        assert queued_events() == [b]


async def test_rest_execute_and_its_timeout(config, mkm):
    async with wired(config, mkm) as (kernel, router, _listener):
        result = await execute(router, kernel, ExecuteRequest(code="print(6 * 7); 'done'"))
        assert result["status"] == "ok" and result["data"] == {"text/plain": "'done'"}
        assert result["output"][0]["text"] == "42\n"
        with pytest.raises(ExecuteTimeout) as err:
            await execute(
                router,
                kernel,
                ExecuteRequest(
                    code="import time; print('started', flush=True); time.sleep(30)",
                    timeout_seconds=2,
                ),
            )
        assert err.value.status == 504
        after = await execute(
            router, kernel, ExecuteRequest(code="'still alive'", timeout_seconds=20)
        )
        assert after["data"] == {"text/plain": "'still alive'"}  # interrupted, not killed


def test_status_machine_and_its_clock():
    machine = StatusMachine()
    assert (machine.status, machine.reason, machine.is_running) == (
        "uninitialized",
        "created",
        False,
    )
    assert machine.change_status("idle", "started") and not machine.change_status("idle", "started")
    assert machine.is_running and machine.idle_seconds == 0 and machine.busy_seconds == 0
    machine._status_since -= 5  # as if 5 s had passed
    assert machine.idle_seconds == 5
    assert machine.change_status("idle", "execute_request")  # a new reason; the clock goes on
    assert machine.idle_seconds == 5
    assert machine.change_status("busy", "execute_request") and machine.busy_seconds == 0
    assert machine.idle_seconds == 0
