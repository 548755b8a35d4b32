"""``run`` and ``attach``: code through a session's queue, its outputs live in the terminal."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from typing import Any

from session_ext.client.aio import AsyncSession, AsyncSupervisor
from session_ext.client.cli.common import Context, CtrlC, err, find_session, note, session_of
from session_ext.client.cli.render import Renderer
from session_ext.client.errors import ApiError
from session_ext.client.execution import AsyncExecution
from session_ext.client.models import ExecuteReply

IS_COMPLETE_TIMEOUT = 0.5  # the kernel answers after the cell it runs: don't wait for that


async def ask(prompt: str, password: bool) -> str:
    """The kernel's input(): read from this terminal (in a thread: the stream goes on)."""
    reader = getpass.getpass if password else input
    return await asyncio.to_thread(reader, prompt)


async def show_queued(session: AsyncSession, execution: AsyncExecution) -> None:
    """While the request waits behind others: "queued, N ahead" on stderr."""
    await execution.accepted.wait()
    if not execution.queued or execution.started.is_set():
        return
    shown = None
    status = err.status("queued") if err.is_terminal else None
    if status is not None:
        status.start()
    try:
        while not execution.started.is_set() and not execution.done:
            queue = await session.queue()
            ahead = queue.position(execution.msg_id)
            if ahead is None:
                break
            text = f"queued, {ahead} ahead"
            if status is not None:
                status.update(text)
            elif text != shown:
                note(text)
            shown = text
            try:
                await asyncio.wait_for(execution.started.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
    finally:
        if status is not None:
            status.stop()


async def stream(
    session: AsyncSession, code: str, renderer: Renderer, stdin: Any = None
) -> tuple[ExecuteReply, bool]:
    """Run ``code`` with its outputs live; (the reply, whether Ctrl-C was pressed)."""
    execution = session.execute(code, on_output=renderer, stdin=stdin)
    with CtrlC(execution.cancel) as ctrl_c:
        waiting = asyncio.ensure_future(show_queued(session, execution))
        try:
            reply = await execution
        finally:
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
    return reply, bool(ctrl_c.pressed)


def exit_status(reply: ExecuteReply, interrupted: bool) -> int:
    if reply.status == "ok":
        return 0
    if reply.status == "aborted":
        why = f": {reply.reason}" if reply.reason else ""
        err.print(f"[yellow]the request was aborted{why}[/]")
    elif interrupted:
        note("the request was interrupted")
    return 1


async def new_session(
    sv: AsyncSupervisor, kernel: str | None, name: str, session_id: str | None = None
) -> AsyncSession:
    """A started session, in the current directory when the server can use it."""
    fields: dict[str, Any] = {
        "display_name": name,
        "session_mode": "background",
        "session_id": session_id,
    }
    try:
        session = await sv.create_session(kernel, working_directory=os.getcwd(), **fields)
    except ApiError as e:
        if e.status != 400 or "directory" not in e.message.lower():
            raise
        session = await sv.create_session(kernel, **fields)  # a remote server: its default
    try:
        await session.start()
    except BaseException:
        await session.delete(force=True)
        raise
    return session


async def run(
    ctx: Context,
    code: str,
    session_ref: str | None,
    kernel: str | None,
    keep: bool,
    images_dir: str | None,
    stdin_free: bool,
) -> int:
    async with ctx.connect() as sv:
        if session_ref is None:
            session = await new_session(sv, kernel, "session-ext run")
        else:
            session = await session_of(sv, session_ref)
        try:
            renderer = Renderer(images_dir)
            stdin = ask if stdin_free and sys.stdin.isatty() else None
            reply, interrupted = await stream(session, code, renderer, stdin)
            return exit_status(reply, interrupted)
        finally:
            if session_ref is None and not keep:
                await session.delete(force=True)
            elif session_ref is None:
                note(f"session {session.session_id} kept (`session-ext rm {session.session_id}`)")


class Prompt:
    """Lines from the terminal: prompt_toolkit (editing, history) on a terminal, else
    plain lines."""

    def __init__(self) -> None:
        self._session: Any = None
        if sys.stdin.isatty() and sys.stdout.isatty():
            from prompt_toolkit import PromptSession

            self._session = PromptSession()

    async def line(self, text: str) -> str:
        """A line; EOFError at the end (Ctrl-D); KeyboardInterrupt for Ctrl-C at the prompt."""
        if self._session is not None:
            return await self._session.prompt_async(text)
        return await asyncio.to_thread(input, text)


async def read_cell(prompt: Prompt, session: AsyncSession, ps1: str, ps2: str) -> str:
    """One cell: more lines while the kernel says the code is incomplete (an empty line
    ends a block, as in the Python console)."""
    lines: list[str] = []
    while True:
        line = await prompt.line(ps2 if lines else ps1)
        lines.append(line)
        code = "\n".join(lines)
        if not code.strip() or (len(lines) > 1 and not line.strip()):
            return code
        try:
            answer = await session.kernel_request(
                "is_complete_request", {"code": code}, timeout=IS_COMPLETE_TIMEOUT
            )
            complete = answer.get("status") != "incomplete"
        except asyncio.TimeoutError:  # busy with another cell: a block waits for its empty line
            complete = len(lines) == 1 and not line.rstrip().endswith((":", "\\"))
        if complete:
            return code


async def attach(ctx: Context, session_ref: str, images_dir: str | None) -> int:
    async with ctx.connect() as sv:
        info = await find_session(sv, session_ref)
        session = sv.session(info.session_id)
        await session.connect()
        note(
            f"attached to {info.session_id} ({info.display_name}, {info.status}): "
            "Ctrl-C interrupts a running cell, Ctrl-D leaves"
        )
        prompt = Prompt()
        ps1 = info.raw.get("input_prompt") or ">>> "
        ps2 = info.raw.get("continuation_prompt") or "... "
        renderer = Renderer(images_dir)
        status = 0
        while True:
            try:
                code = await read_cell(prompt, session, ps1, ps2)
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            if not code.strip():
                continue
            reply, interrupted = await stream(session, code, renderer, stdin=ask)
            status = exit_status(reply, interrupted)
        return status
