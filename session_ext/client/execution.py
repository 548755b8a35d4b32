"""One execute request as the client follows it: its outputs as they arrive (nbformat's
shapes), its reply once both the ``execute_reply`` and the iopub ``idle`` have come, stdin
answered through a callback, cancel. Fed by the session's websocket (``channel``)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from session_ext.client.errors import ClientError
from session_ext.client.models import ExecuteReply, ExecutionError
from session_ext.client.outputs import OutputList, output_of

if TYPE_CHECKING:
    from session_ext.client.channel import SessionChannel

log = logging.getLogger(__name__)

# stdin: (prompt, password) -> the answer, or an awaitable of it
StdinCallback = Callable[[str, bool], "str | Awaitable[str]"]
OutputCallback = Callable[[dict[str, Any]], None]


class AsyncExecution:
    """One execute request. Awaiting it gives its :class:`ExecuteReply`; iterating it gives
    each output as it arrives (nbformat's shapes, plus ``clear_output`` and
    ``update_display_data`` items), from the first one, however late the iteration starts.

    ``queued`` is true once the server said the request waits behind others; ``started``
    is set when the kernel starts on it."""

    def __init__(
        self,
        channel: SessionChannel,
        msg_id: str,
        stdin: StdinCallback | None,
        on_output: OutputCallback | None,
    ):
        self.channel = channel
        self.msg_id = msg_id
        self.queued = False
        self.accepted = asyncio.Event()  # the server has it: queued, started or answered
        self.started = asyncio.Event()
        self.execution_count: int | None = None
        self._stdin = stdin
        self._on_output = on_output
        self._items: list[dict[str, Any]] = []
        self._outputs = OutputList()
        self._changed = asyncio.Event()
        self._done: asyncio.Future[ExecuteReply] = asyncio.get_running_loop().create_future()
        self._reply_msg: dict[str, Any] | None = None
        self._idle = False
        self._sending: asyncio.Future[None] | None = None
        self._stdin_tasks: set[asyncio.Task[None]] = set()

    @property
    def done(self) -> bool:
        return self._done.done()

    @property
    def outputs(self) -> list[dict[str, Any]]:
        """The outputs so far, as a notebook cell would hold them."""
        return self._outputs.nbformat()

    async def result(self, timeout: float | None = None) -> ExecuteReply:
        """The reply, once the request has finished (``timeout``: asyncio.TimeoutError)."""
        return await asyncio.wait_for(asyncio.shield(self._done), timeout)

    def __await__(self) -> Generator[Any, None, ExecuteReply]:
        return self.result().__await__()

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        index = 0
        while True:
            while index < len(self._items):
                index += 1
                yield self._items[index - 1]
            if self._done.done():
                if self._done.exception() is not None:
                    raise self._done.exception()
                return
            self._changed.clear()
            await self._changed.wait()

    async def cancel(self) -> None:
        """Stop this request: cancelled while it waits, interrupted once it runs (its reply
        then says ``aborted`` or carries the KeyboardInterrupt)."""
        if self.done:
            return
        if self._sending is not None:
            await self._sending
        await self.channel.session.cancel_or_interrupt(self.msg_id)

    # --- from the channel ----------------------------------------------------------------

    def _push(self, item: dict[str, Any]) -> None:
        self._items.append(item)
        self._changed.set()
        if self._on_output is not None:
            try:
                self._on_output(item)
            except Exception:  # a caller's bug must not stop the websocket's reader
                log.exception("on_output callback failed")

    def _iopub(self, msg: dict[str, Any]) -> None:
        msg_type = msg["header"]["msg_type"]
        if msg_type == "status":
            state = msg["content"].get("execution_state")
            if state == "busy":
                self.started.set()
            elif state == "idle":
                self._idle = True
                self._maybe_finish()
            return
        if msg_type == "execute_input":
            self.started.set()
            self.execution_count = msg["content"].get("execution_count")
            return
        item = output_of(msg)
        if item is not None:
            self._outputs.add(item)
            self._push(item)

    def _reply(self, msg: dict[str, Any]) -> None:
        self._reply_msg = msg
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if self._reply_msg is None or not self._idle or self.done:
            return
        content = self._reply_msg.get("content") or {}
        status = content.get("status", "ok")
        error = None
        if status == "error":
            error = ExecutionError(
                ename=content.get("ename", ""),
                evalue=content.get("evalue", ""),
                traceback=content.get("traceback", []),
            )
        self._finish(
            ExecuteReply(
                msg_id=self.msg_id,
                status=status,
                execution_count=content.get("execution_count", self.execution_count),
                outputs=self.outputs,
                error=error,
                user_expressions=content.get("user_expressions") or {},
                payload=content.get("payload") or [],
                reason=(self._reply_msg.get("metadata") or {}).get("reason"),
            )
        )

    def _finish(self, reply: ExecuteReply) -> None:
        if not self._done.done():
            self._done.set_result(reply)
        self.channel.forget(self)
        self.accepted.set()
        self._changed.set()

    def _abort(self, reason: str) -> None:
        if not self.done:
            self._finish(
                ExecuteReply(
                    msg_id=self.msg_id, status="aborted", outputs=self.outputs, reason=reason
                )
            )

    def _fail(self, error: Exception) -> None:
        if not self._done.done():
            self._done.set_exception(error)
            self._done.exception()  # retrieved: nobody may ever await a fire-and-forget one
        self.channel.forget(self)
        self.accepted.set()
        self._changed.set()

    def _input_request(self, msg: dict[str, Any]) -> None:
        task = asyncio.ensure_future(self._answer(msg))
        self._stdin_tasks.add(task)
        task.add_done_callback(self._stdin_tasks.discard)

    async def _answer(self, msg: dict[str, Any]) -> None:
        content = msg.get("content") or {}
        prompt, password = content.get("prompt", ""), bool(content.get("password"))
        try:
            if self._stdin is None:
                raise ClientError("no stdin callback")
            if inspect.iscoroutinefunction(self._stdin):
                value = await self._stdin(prompt, password)
            else:
                # A blocking callback (input()) must not stop the websocket's reader.
                value = await asyncio.to_thread(self._stdin, prompt, password)
                if inspect.isawaitable(value):
                    value = await value
        except (Exception, KeyboardInterrupt) as e:
            log.info("stdin callback gave no answer (%s): interrupting the request", e)
            await self.channel.session.interrupt()
            return
        self.channel.send(
            self.channel.message(
                "stdin", "input_reply", {"value": str(value)}, parent_header=msg["header"]
            )
        )
