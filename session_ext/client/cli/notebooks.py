"""``run-notebook``, ``status`` and ``fetch``: a notebook's cells queued in a notebook
session, and its outputs back in the .ipynb — written by the server when the run ends, so
``--detach`` can leave at once."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from session_ext.client import notebook
from session_ext.client.aio import AsyncSession, AsyncSupervisor
from session_ext.client.cli.common import (
    Context,
    CtrlC,
    Failure,
    err,
    find_session,
    looks_like_path,
    note,
    out,
)
from session_ext.client.errors import ApiError, NotFound
from session_ext.client.execution import AsyncExecution
from session_ext.client.models import NotebookRun, SessionInfo

ACCEPT_TIMEOUT = 60.0  # the server has every cell (queued, on disk in durable mode)
WRITE_TIMEOUT = 60.0  # after the last cell, for the server to write the notebook


def kernel_of(nb: Any, kernel: str | None) -> str | None:
    return kernel or (nb.metadata.get("kernelspec") or {}).get("name")


async def run_notebook(
    ctx: Context,
    path: str,
    output: str | None,
    kernel: str | None,
    detach: bool,
    keep_kernel: bool,
    allow_errors: bool,
) -> int:
    source = Path(path).resolve()
    if not source.is_file():
        raise Failure(f"no notebook at {path}")
    nb = notebook.read(source)
    target = Path(output).resolve() if output else source
    added_ids = notebook.ensure_cell_ids(nb)
    if target != source:
        notebook.clear_outputs(nb)
    if added_ids or target != source:
        notebook.write(nb, target)  # the server matches cells by id: they must be in the file
        if added_ids:
            note(f"gave the cells of {target.name} ids (nbformat 4.5), as JupyterLab does")
    cells = notebook.code_cells(nb)
    async with ctx.connect() as sv:
        session = await sv.create_session(
            kernel_of(nb, kernel),
            display_name=source.name,
            session_mode="notebook",
            notebook_uri=target.as_uri(),
            working_directory=str(source.parent),
        )
        try:
            await session.start()
            executions = [
                session.execute(cell.source, cell_id=cell.id, stop_on_error=not allow_errors)
                for cell in cells
            ]
            await asyncio.wait_for(
                asyncio.gather(*(e.accepted.wait() for e in executions)), ACCEPT_TIMEOUT
            )
            run = await arm(session, target, executions, shutdown_kernel=detach and not keep_kernel)
        except BaseException:
            await session.delete(force=True)
            raise
        if detach:
            if run is None:
                await session.delete(force=True)
                raise Failure(
                    f"the server cannot write {target} (it is not on its machine): "
                    "run without --detach, or put the notebook where the server can read it"
                )
            out.print(
                f"running {len(cells)} cells of {escape(source.name)} in session "
                f"[bold]{session.session_id}[/] on {sv.endpoint.api_url}"
            )
            out.print(
                f"the server writes the outputs into {escape(str(target))} when the run ends; "
                f"`session-ext status {session.session_id}` follows it"
            )
            return 0
        return await follow(sv, session, cells, executions, run, nb, target)


async def arm(
    session: AsyncSession, target: Path, executions: list[AsyncExecution], shutdown_kernel: bool
) -> NotebookRun | None:
    """The server's write-back; None when it cannot see the file (a remote server)."""
    try:
        return await session.write_notebook_when_done(
            str(target), [e.msg_id for e in executions], shutdown_kernel=shutdown_kernel
        )
    except ApiError as e:
        if e.status == 400 and "Cannot" in e.message:
            return None
        raise


async def follow(
    sv: AsyncSupervisor,
    session: AsyncSession,
    cells: list[Any],
    executions: list[AsyncExecution],
    run: NotebookRun | None,
    nb: Any,
    target: Path,
) -> int:
    """Progress while the cells run; then the notebook written (by the server, or here)."""
    replies = []
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    with progress, CtrlC(session.interrupt):
        task = progress.add_task(f"running {target.name}", total=len(executions))
        for index, execution in enumerate(executions):
            reply = await execution
            replies.append(reply)
            progress.advance(task)
            if reply.status == "error" and reply.error is not None:
                progress.console.print(
                    f"[red]cell {index + 1} ({cells[index].id}) raised "
                    f"{escape(reply.error.ename)}: {escape(reply.error.evalue)}[/]"
                )
    failed = sum(r.status == "error" for r in replies)
    aborted = sum(r.status == "aborted" for r in replies)
    if run is not None:
        run = await written(session)
        if run.status != "written":
            raise Failure(f"the server could not write {target}: {run.error}")
    else:
        notebook.apply_cells(nb, await session.cells())
        notebook.write(nb, target)
    await session.delete(force=True)
    summary = f"{len(executions)} cells, {failed} failed" + (
        f", {aborted} not run" if aborted else ""
    )
    out.print(f"wrote {escape(str(target))} ({summary})")
    return 1 if failed or aborted else 0


async def written(session: AsyncSession) -> NotebookRun:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WRITE_TIMEOUT
    while True:
        run = await session.notebook_run()
        if run.status in ("written", "failed") or loop.time() > deadline:
            return run
        await asyncio.sleep(0.1)


async def notebook_session(sv: AsyncSupervisor, ref: str) -> SessionInfo:
    """The newest notebook session of a notebook path (or a session by id)."""
    if looks_like_path(ref):
        target = os.path.realpath(ref)
        found = [
            s
            for s in await sv.list_sessions()
            if s.notebook_path and os.path.realpath(s.notebook_path) == target
        ]
        if found:
            return max(found, key=lambda s: s.raw.get("started") or "")
    return await find_session(sv, ref)


async def status(ctx: Context, ref: str | None) -> int:
    async with ctx.connect() as sv:
        if ref is not None:
            infos = [await notebook_session(sv, ref)]
        else:
            infos = [s for s in await sv.list_sessions() if s.session_mode == "notebook"]
        shown = 0
        for info in infos:
            try:
                run = await sv.session(info.session_id).notebook_run()
            except NotFound as e:
                if ref is not None and e.code == "not_found":
                    raise Failure(f"session {info.session_id} has no notebook run") from None
                continue
            shown += 1
            out.print(describe(info, run))
        if not shown:
            note("no notebook runs")
        return 0


def describe(info: SessionInfo, run: NotebookRun) -> str:
    progress = f"{run.finished}/{run.cells} cells finished, {run.errors} failed"
    state = {"written": "[green]written[/]", "failed": "[red]failed[/]"}.get(run.status, run.status)
    line = (
        f"{info.session_id}  {escape(run.output_path)}  {state}  ({progress}; kernel {info.status})"
    )
    if run.error:
        line += f"\n  {escape(run.error)}"
    return line


async def fetch(ctx: Context, path: str, session_ref: str | None, output: str | None) -> int:
    """The server's cells into the local notebook (what ran so far)."""
    source = Path(path).resolve()
    if not source.is_file():
        raise Failure(f"no notebook at {path}")
    async with ctx.connect() as sv:
        info = await (find_session(sv, session_ref) if session_ref else notebook_session(sv, path))
        cells = await sv.session(info.session_id).cells()
    nb = notebook.read(source)
    filled, edited = notebook.apply_cells(nb, cells)
    target = Path(output).resolve() if output else source
    notebook.write(nb, target)
    running = sum(not c.finished for c in cells)
    extra = (f", {edited} left alone (edited since)" if edited else "") + (
        f", {running} still queued or running" if running else ""
    )
    out.print(
        f"wrote {filled} cells' outputs from {info.session_id} into {escape(str(target))}{extra}"
    )
    return 0
