"""``session-ext``: the supervisor from a terminal (click for the command line, rich for
tables, progress and colour). ``jupyter session-ext`` stays the server.

It finds the server by itself (the running JupyterLab or ``jupyter session-ext`` of this
user), or takes ``--url``/``--token`` or ``--connection-file`` (or ``SESSION_EXT_URL``,
``SESSION_EXT_TOKEN``, ``SESSION_EXT_CONNECTION_FILE``). A session is named by its id, a
unique prefix of it, its notebook's path or its display name.
"""

from __future__ import annotations

import sys
import time

import click

from session_ext._version import __version__
from session_ext.client import discovery
from session_ext.client.cli import run as running
from session_ext.client.cli.common import (
    Context,
    Failure,
    err,
    find_session,
    note,
    out,
    read_code,
    session_of,
)
from session_ext.client.cli.render import history_table, queue_table, sessions_table

pass_ctx = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar=discovery.URL_ENV, help="The server's URL (its API or its base URL).")
@click.option("--token", envvar=discovery.TOKEN_ENV, help="The server's token.")
@click.option(
    "--connection-file",
    envvar=discovery.CONNECTION_FILE_ENV,
    type=click.Path(dir_okay=False),
    help="The server state of `jupyter session-ext --connection-file F`.",
)
@click.version_option(__version__, "-V", "--version", prog_name="session-ext")
@click.pass_context
def main(ctx: click.Context, url: str | None, token: str | None, connection_file: str | None):
    """Run code in, and look after, the kernel sessions of a session_ext supervisor
    (a JupyterLab with session_ext, or `jupyter session-ext`)."""
    ctx.obj = Context(url, token, connection_file)


@main.command()
def servers():
    """The running servers of this user that have the supervisor."""
    found = discovery.find_servers()
    if not found:
        note("no running server with session_ext (start `jupyter lab` or `jupyter session-ext`)")
        return
    chosen = discovery.choose([e for e, _ in found])
    for endpoint, status in found:
        mark = "*" if endpoint == chosen else " "
        out.print(
            f"{mark} {endpoint.api_url}  pid {endpoint.pid}  root {endpoint.root_dir}  "
            f"{status.get('sessions', 0)} sessions"
        )


@main.command(name="ls")
@pass_ctx
def ls(ctx: Context):
    """Sessions: status, queue length, memory, notebook or directory."""

    async def go():
        async with ctx.connect() as sv:
            sessions = await sv.list_sessions()
        note(f"{ctx.endpoint.describe()}: {len(sessions)} sessions")
        if sessions:
            out.print(sessions_table(sessions))

    ctx.run(go)


@main.command()
@click.option("--kernel", "-k", help="The kernelspec (default: the server's).")
@click.option("--name", help="Display name.")
@click.option("--id", "session_id", help="The session id (default: generated).")
@pass_ctx
def new(ctx: Context, kernel: str | None, name: str | None, session_id: str | None):
    """Create and start a session; prints its id."""

    async def go():
        async with ctx.connect() as sv:
            session = await running.new_session(
                sv, kernel, name or "session-ext", session_id=session_id
            )
            out.print(session.session_id)

    ctx.run(go)


@main.command()
@click.argument("code")
@click.option("--session", "-s", "session_ref", help="Run in this session (default: a new one).")
@click.option("--kernel", "-k", help="The new session's kernelspec.")
@click.option("--keep", is_flag=True, help="Keep the new session (default: deleted at the end).")
@click.option("--images-dir", type=click.Path(file_okay=False), help="Where images go.")
@pass_ctx
def run(ctx: Context, code, session_ref, kernel, keep, images_dir):
    """Run CODE (code, a FILE, or - for stdin), streaming its outputs. Waits in the
    session's queue ("queued, N ahead"); Ctrl-C interrupts the code; exit status 1 if it
    fails. Images are saved to files, whose paths are printed."""
    source, _ = read_code(code)
    status = ctx.run(running.run, ctx, source, session_ref, kernel, keep, images_dir, code != "-")
    sys.exit(status)


@main.command()
@click.argument("session")
@click.option("--images-dir", type=click.Path(file_okay=False), help="Where images go.")
@pass_ctx
def attach(ctx: Context, session, images_dir):
    """An interactive prompt on SESSION, through its queue (Ctrl-D leaves)."""
    sys.exit(ctx.run(running.attach, ctx, session, images_dir))


@main.command()
@click.argument("session")
@pass_ctx
def queue(ctx: Context, session):
    """The request SESSION runs and those waiting."""

    async def go():
        async with ctx.connect() as sv:
            summary = await (await session_of(sv, session)).queue()
        if not summary.active and not summary.pending:
            note("the queue is empty")
        else:
            out.print(queue_table(summary))

    ctx.run(go)


@main.command()
@click.argument("session")
@click.argument("msg_id")
@pass_ctx
def cancel(ctx: Context, session, msg_id):
    """Cancel the waiting request MSG_ID (or a unique prefix) of SESSION."""

    async def go():
        async with ctx.connect() as sv:
            s = await session_of(sv, session)
            summary = await s.queue()
            matches = [r.msg_id for r in summary.pending if r.msg_id.startswith(msg_id)]
            if summary.active and summary.active.msg_id.startswith(msg_id) and not matches:
                raise Failure(
                    "that request is running, not waiting: "
                    f"`session-ext interrupt {s.session_id}` stops it"
                )
            if len(matches) != 1:
                raise Failure(
                    f"no single waiting request {msg_id!r}: `session-ext queue {session}`"
                )
            await s.cancel(matches[0])
            out.print(f"cancelled {matches[0]}")

    ctx.run(go)


def lifecycle(name: str, doc: str, done: str):
    @main.command(name=name, help=doc)
    @click.argument("session")
    @pass_ctx
    def command(ctx: Context, session):
        async def go():
            async with ctx.connect() as sv:
                s = await session_of(sv, session)
                await getattr(s, name)()
                out.print(f"{s.session_id}: {done}")

        ctx.run(go)

    return command


lifecycle(
    "interrupt", "Interrupt what SESSION runs (the waiting requests are aborted).", "interrupted"
)
lifecycle("restart", "Restart SESSION's kernel.", "restarted")
lifecycle("kill", "Kill SESSION's kernel (SIGKILL).", "killed")


@main.command(name="rm")
@click.argument("session")
@click.option("--force", "-f", is_flag=True, help="Shut a running kernel down first.")
@pass_ctx
def rm(ctx: Context, session, force):
    """Delete SESSION (an exited one, or any with --force)."""

    async def go():
        async with ctx.connect() as sv:
            s = await session_of(sv, session)
            await s.delete(force=force)
            out.print(f"deleted {s.session_id}")

    ctx.run(go)


@main.command()
@click.argument("session")
@click.option("-n", "limit", type=int, default=20, show_default=True, help="How many.")
@pass_ctx
def history(ctx: Context, session, limit):
    """SESSION's last executions, newest last."""

    async def go():
        async with ctx.connect() as sv:
            entries = await (await session_of(sv, session)).history(limit)
        if entries:
            out.print(history_table(entries))
        else:
            note("no executions yet")

    ctx.run(go)


@main.command()
@click.argument("session", required=False)
@click.option("--follow", "-f", is_flag=True, help="Go on printing events as they come.")
@pass_ctx
def logs(ctx: Context, session, follow):
    """SESSION's events (every session's without one): status, queue, notebook runs."""

    async def go():
        async with ctx.connect() as sv:
            wanted = (await find_session(sv, session)).session_id if session else None
            async with sv.events() as events:
                async for event in events:
                    for line in event_lines(event, wanted):
                        out.print(line, markup=False)
                    if event.event == "snapshot" and not follow:
                        return

    try:
        ctx.run(go)
    except KeyboardInterrupt:
        pass


def event_lines(event, wanted: str | None) -> list[str]:
    stamp = time.strftime("%H:%M:%S")
    raw = event.raw
    if event.event == "snapshot":
        return [
            f"{stamp} {s['session_id']} {s['status']} (queue {s['execution_queue']['length']})"
            for s in raw["sessions"]
            if wanted in (None, s["session_id"])
        ]
    session_id = event.session_id or (raw.get("session") or {}).get("session_id")
    if wanted not in (None, session_id):
        return []
    if event.event == "status":
        return [f"{stamp} {session_id} status {raw['status']} ({raw.get('reason', '')})"]
    if event.event == "queue":
        active = (raw.get("active") or {}).get("msg_id") or "-"
        return [f"{stamp} {session_id} queue {raw['length']} waiting, running {active}"]
    if event.event == "notebook_run":
        run = raw["run"]
        return [f"{stamp} {session_id} notebook run {run['status']}: {run['output_path']}"]
    if event.event == "resource_usage":
        usage = raw.get("resource_usage") or {}
        return [
            f"{stamp} {session_id} cpu {usage.get('cpu_percent')}% memory {usage.get('memory_bytes')} B"
        ]
    return [f"{stamp} {session_id} {event.event}"]


@main.command(name="run-notebook")
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), help="Write there, not into NOTEBOOK."
)
@click.option("--kernel", "-k", help="The kernelspec (default: the notebook's).")
@click.option(
    "--detach", "-d", is_flag=True, help="Queue the cells and leave: the server writes the outputs."
)
@click.option(
    "--keep-kernel", is_flag=True, help="With --detach: leave the kernel running afterwards."
)
@click.option("--allow-errors", is_flag=True, help="Run the cells after one that fails.")
@pass_ctx
def run_notebook(ctx: Context, notebook, output, kernel, detach, keep_kernel, allow_errors):
    """Queue every code cell of NOTEBOOK in a new notebook session and put the outputs
    into it (or into --output) when the run ends. With --detach the terminal can go: the
    server writes the notebook even with no client; `session-ext status` follows it."""
    from session_ext.client.cli import notebooks  # (nbformat takes a second to import)

    sys.exit(
        ctx.run(
            notebooks.run_notebook, ctx, notebook, output, kernel, detach, keep_kernel, allow_errors
        )
    )


@main.command()
@click.argument("target", required=False)
@pass_ctx
def status(ctx: Context, target):
    """Notebook runs (of TARGET: a notebook or a session): cells finished, written or not."""
    from session_ext.client.cli import notebooks

    sys.exit(ctx.run(notebooks.status, ctx, target))


@main.command()
@click.argument("notebook", type=click.Path(dir_okay=False, exists=True))
@click.option("--session", "-s", "session_ref", help="The session (default: NOTEBOOK's newest).")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False), help="Write there, not into NOTEBOOK."
)
@pass_ctx
def fetch(ctx: Context, notebook, session_ref, output):
    """Put the outputs the server kept for NOTEBOOK's cells into it (what ran so far)."""
    from session_ext.client.cli import notebooks

    sys.exit(ctx.run(notebooks.fetch, ctx, notebook, session_ref, output))


def entry() -> None:
    try:
        main(prog_name="session-ext")
    except KeyboardInterrupt:
        err.print("")
        sys.exit(130)
