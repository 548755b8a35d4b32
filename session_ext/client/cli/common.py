"""What every command shares: the server to talk to, sessions named by id, prefix or
notebook, errors as one line, and Ctrl-C while a cell runs."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from session_ext.client import discovery
from session_ext.client.aio import AsyncSession, AsyncSupervisor
from session_ext.client.errors import ApiError, ClientError, NotFound, Unauthorized
from session_ext.client.models import SessionInfo

# Not a terminal (a pipe, a file): no width to fit tables to, and no colours.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 500)
err = Console(
    stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else 500
)


def note(text: str) -> None:
    """A remark on stderr (stdout stays the outputs')."""
    err.print(f"[dim]{escape(text)}[/]")


class Failure(click.ClickException):
    """An expected failure: one line on stderr, exit status 1 (never a traceback)."""

    def show(self, file: Any = None) -> None:
        err.print(f"[bold red]error:[/] {self.format_message()}", markup=True)


def explain(error: ClientError, endpoint: discovery.Endpoint | None = None) -> str:
    """One line: what failed and what to do."""
    where = f" at {endpoint.api_url}" if endpoint else ""
    if isinstance(error, Unauthorized):
        return (
            f"the server{where} refused the token (401): give the right one with --token "
            "or SESSION_EXT_TOKEN"
        )
    if isinstance(error, NotFound) and error.code == "KS-1":
        return f"{error.message}: `session-ext ls` lists the sessions"
    if isinstance(error, ApiError):
        return f"{error.message} ({error.status} {error.code})"
    return str(error)


class Context:
    """The options every command shares; ``connect()`` gives the client."""

    def __init__(self, url: str | None, token: str | None, connection_file: str | None):
        self.url, self.token, self.connection_file = url, token, connection_file
        self._endpoint: discovery.Endpoint | None = None

    @property
    def endpoint(self) -> discovery.Endpoint:
        if self._endpoint is None:
            self._endpoint = discovery.resolve(self.url, self.token, self.connection_file)
        return self._endpoint

    def connect(self) -> AsyncSupervisor:
        return AsyncSupervisor(self.endpoint)

    def run(self, coro_fn: Callable[..., Any], *args: Any) -> Any:
        """Run a command's coroutine; a ClientError becomes one line and exit status 1."""
        try:
            return asyncio.run(coro_fn(*args))
        except ClientError as e:
            raise Failure(explain(e, self._endpoint)) from None


def looks_like_path(ref: str) -> bool:
    return ref.endswith(".ipynb") or os.sep in ref


async def find_session(sv: AsyncSupervisor, ref: str) -> SessionInfo:
    """A session by id, unique id prefix, notebook (its path, here or as the server sees
    it) or display name."""
    sessions = await sv.list_sessions()
    exact = [s for s in sessions if s.session_id == ref]
    if exact:
        return exact[0]
    target = os.path.realpath(ref) if looks_like_path(ref) else None
    for match in (
        lambda s: s.session_id.startswith(ref),
        lambda s: (
            target is not None
            and s.notebook_path is not None
            and os.path.realpath(s.notebook_path) == target
        ),
        lambda s: s.notebook_path is not None and s.notebook_path.endswith("/" + ref.lstrip("/")),
        lambda s: s.display_name == ref,
    ):
        found = [s for s in sessions if match(s)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            ids = ", ".join(s.session_id for s in found[:5])
            raise Failure(f"{ref!r} matches several sessions ({ids}): give more of the id")
    raise Failure(f"no session {ref!r} on {sv.endpoint.api_url}: `session-ext ls` lists them")


async def session_of(sv: AsyncSupervisor, ref: str) -> AsyncSession:
    return sv.session((await find_session(sv, ref)).session_id)


class CtrlC:
    """While a request runs, Ctrl-C stops the request (cancelled if it waits, interrupted if
    it runs), not this program; a second Ctrl-C leaves at once."""

    def __init__(self, on_first: Callable[[], Any]):
        self.on_first = on_first
        self.pressed = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None

    def __enter__(self) -> CtrlC:
        self._loop = asyncio.get_running_loop()
        self._loop.add_signal_handler(signal.SIGINT, self._pressed)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._loop is not None
        self._loop.remove_signal_handler(signal.SIGINT)

    def _pressed(self) -> None:
        self.pressed += 1
        if self.pressed > 1:
            err.print("\n[dim]Ctrl-C again: leaving (the request goes on on the server)[/]")
            os._exit(130)
        err.print("\n[yellow]Ctrl-C: interrupting the request (again to leave)[/]")
        self._task = asyncio.ensure_future(self.on_first())


def read_code(source: str) -> tuple[str, str]:
    """CODE, a FILE or - (stdin); (the code, what it is called in messages)."""
    if source == "-":
        return sys.stdin.read(), "<stdin>"
    path = Path(source)
    if path.suffix == ".ipynb" and path.is_file():
        raise Failure(f"{source} is a notebook: `session-ext run-notebook {source}` runs it")
    if path.is_file():
        return path.read_text(), str(path)
    return source, "<code>"
