"""REST execute: a request through the session's queue like anyone else's, a waiter that
collects what it produces, and a timeout that stops it without touching other requests."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from session_ext.core.errors import TIMEOUT, SupervisorError
from session_ext.core.requests import ExecuteRequest
from session_ext.session.channels import InternalClient
from session_ext.session.outputs import mime_strings, positron_error, positron_output
from session_ext.session.router import MessageRouter
from session_ext.wire.messages import KernelMessage


class Interruptible(Protocol):
    async def interrupt(self) -> None: ...

    def send_control(self, msg_type: str, content: dict[str, Any]) -> None: ...


class ExecuteTimeout(SupervisorError):
    def __init__(self, seconds: float, reply: dict[str, Any]):
        super().__init__(504, TIMEOUT, f"Execution did not finish within {seconds} s")
        self.reply = reply

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "reply": self.reply}


class ExecuteWaiter(InternalClient):
    """Collects what a REST execute request produces, until its reply and idle arrive."""

    def __init__(self, msg_id: str):
        self.msg_id = msg_id
        self.outputs: list[dict[str, Any]] = []
        self.reply: dict[str, Any] | None = None
        self.data: dict[str, Any] | None = None
        self.idle = False
        self.done = asyncio.get_running_loop().create_future()

    def deliver(self, msg: KernelMessage) -> None:
        msg_type = msg.msg_type
        if msg.channel == "iopub":
            if msg_type == "status":
                self.idle = msg.content.get("execution_state") == "idle"
            elif msg_type == "execute_result":  # the result: ExecuteReply.data, as Kallichore
                self.data = mime_strings(msg.content.get("data"))
            else:
                item = positron_output(msg_type, msg.content)
                if item is not None:
                    self.outputs.append(item)
        elif msg_type == "execute_reply":
            self.reply = msg.content
        if self.reply is not None and self.idle and not self.done.done():
            self.done.set_result(None)

    def result(self) -> dict[str, Any]:
        reply = self.reply or {"status": "running"}
        result: dict[str, Any] = {
            "status": reply.get("status"),
            "execution_count": reply.get("execution_count"),
            "output": self.outputs,
        }
        if self.data is not None:
            result["data"] = self.data
        if reply.get("status") == "error":
            result.update(positron_error(reply))
        return result


async def execute(
    router: MessageRouter, kernel: Interruptible, request: ExecuteRequest
) -> dict[str, Any]:
    """Run ``request`` through the queue and wait for it (504 past its timeout)."""
    content = {
        "code": request.code,
        "silent": request.silent,
        "store_history": request.store_history,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": request.stop_on_error,
    }
    msg = router.new_message("shell", "execute_request", content)
    msg_id = msg["header"]["msg_id"]
    waiter = ExecuteWaiter(msg_id)
    router.observe(msg_id, waiter)
    try:
        router.send_client_message(waiter, msg, source="rest")
        try:
            await asyncio.wait_for(asyncio.shield(waiter.done), request.timeout_seconds)
        except asyncio.TimeoutError:
            await _stop(router, kernel, msg_id)
            raise ExecuteTimeout(request.timeout_seconds, waiter.result()) from None
    finally:
        router.unobserve(msg_id)
    return waiter.result()


async def _stop(router: MessageRouter, kernel: Interruptible, msg_id: str) -> None:
    """Cancel the request if it waits, interrupt it if it runs (the rest of the queue is
    someone else's and goes on)."""
    queue = router.queue
    if msg_id in queue.pending:
        queue.cancel(msg_id)
    elif queue.active is not None and queue.active.msg_id == msg_id:
        queue.active.interrupted_by_supervisor = True
        try:
            await kernel.interrupt()
        except SupervisorError:  # an adopted kernel in signal mode: ask it anyway
            kernel.send_control("interrupt_request", {})


def submit(router: MessageRouter, client: InternalClient, code: str, source: str) -> str:
    """Queue ``code`` for ``client``, which sees the request's iopub messages and its reply
    (an agent's execution, session_ext/mcp): it is waited for by whoever holds the client,
    not here. It does not stop the queue on an error (the requests behind it are someone
    else's). The request's msg_id; ``client.finished()`` is called once it is done."""
    content = {
        "code": code,
        "silent": False,
        "store_history": True,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": False,
    }
    msg = router.new_message("shell", "execute_request", content)
    # who sent it, for whoever lists the queue (the Kernel Sessions panel marks agents' cells)
    msg["metadata"]["session_ext"] = {"source": source, "agent": client.agent}
    msg_id = msg["header"]["msg_id"]
    router.observe(msg_id, client)
    client.finished = lambda: router.unobserve(msg_id)
    try:
        router.send_client_message(client, msg, source=source)
    except BaseException:
        router.unobserve(msg_id)
        raise
    return msg_id
