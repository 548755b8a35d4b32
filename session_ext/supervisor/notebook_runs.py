"""Notebook runs written back into their .ipynb by the server when they end, whether or not
a client is still there (``session-ext run-notebook --detach``).

A client queues a notebook's code cells in a notebook session (each execute_request with
its ``metadata.cellId``), then arms a run with those requests' msg_ids and the notebook's
path. The run ends when none of them is queued or running any more (finished, failed,
aborted, or the kernel exited); the server then reads the notebook, puts each cell's
outputs and execution count (as the session's cells kept them) into the cell with that id
whose source is still the code that ran, writes it (to ``output_path`` if given), and may
shut the kernel down. It listens to the session events (``EventBus``) only while a run is
on; the file work runs in a thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
from typing import Any

import nbformat

from session_ext.core.errors import SupervisorError, bad_request

log = logging.getLogger(__name__)

RUNNING, WRITTEN, FAILED = "running", "written", "failed"


class NotebookRun:
    def __init__(self, session_id: str, body: dict[str, Any]):
        self.session_id = session_id
        self.path: str = body["path"]
        self.output_path: str = body.get("output_path") or self.path
        self.msg_ids: list[str] = list(dict.fromkeys(body["msg_ids"]))
        self.shutdown_kernel = bool(body.get("shutdown_kernel"))
        self.status = RUNNING
        self.error: str | None = None
        self.written_at: int | None = None
        self.counts = {"cells": len(self.msg_ids), "finished": 0, "errors": 0}

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "path": self.path,
            "output_path": self.output_path,
            "status": self.status,
            **self.counts,
            "shutdown_kernel": self.shutdown_kernel,
            "error": self.error,
            "written_at": self.written_at,
        }


class NotebookRuns:
    """The runs of every session (one per session: a new one replaces a finished one)."""

    def __init__(self, supervisor: Any, events: Any):
        self.supervisor = supervisor
        self.events = events
        self._runs: dict[str, NotebookRun] = {}
        self._listening = False
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, session_id: str) -> dict[str, Any]:
        self.supervisor.get(session_id)  # 404 for an unknown session
        run = self._runs.get(session_id)
        if run is None:
            raise SupervisorError(404, "not_found", f"Session {session_id!r} has no notebook run")
        self._count(run)
        return run.to_json()

    async def arm(self, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        session = self.supervisor.get(session_id)
        if session.cells is None:
            raise bad_request(
                f"Session {session_id!r} is not a notebook session (session_mode: notebook)"
            )
        current = self._runs.get(session_id)
        if current is not None and current.status == RUNNING:
            raise SupervisorError(409, "conflict", f"Session {session_id!r} has a run going on")
        run = NotebookRun(session_id, body)
        for path in {run.path, run.output_path}:
            if not os.path.isabs(path) or not path.endswith(".ipynb"):
                raise bad_request(
                    f"Field 'path' must be an absolute path to an .ipynb; got {path!r}"
                )
        known = {cell["msg_id"] for cell in session.cells.to_json()}
        unknown = [m for m in run.msg_ids if m not in known and m not in session.queue]
        if unknown:
            raise bad_request(
                f"Field 'msg_ids' names requests this session never queued as notebook cells: "
                f"{', '.join(unknown[:5])}"
            )
        await asyncio.to_thread(_check_paths, run.path, run.output_path)
        self._runs[session_id] = run
        self._listen()
        self._check(session_id)
        return run.to_json()

    # --- the run's end ------------------------------------------------------------------

    def _listen(self) -> None:
        if not self._listening:
            self._listening = True
            self.events.subscribe(self._on_event, [])

    def _on_event(self, frame: str) -> None:
        event = json.loads(frame)
        name, session_id = event.get("event"), event.get("session_id")
        if name == "session_deleted":
            self._runs.pop(session_id, None)
        elif name in ("queue", "status") and session_id in self._runs:
            self._check(session_id)
        if not any(run.status == RUNNING for run in self._runs.values()):
            self._listening = False
            self.events.unsubscribe(self._on_event)

    def _check(self, session_id: str) -> None:
        run = self._runs[session_id]
        if run.status != RUNNING:
            return
        try:
            session = self.supervisor.get(session_id)
        except SupervisorError:
            self._runs.pop(session_id, None)
            return
        if any(msg_id in session.queue for msg_id in run.msg_ids):
            return
        run.status = "writing"
        cells = session.cells.to_json()
        task = asyncio.ensure_future(self._finish(run, session, cells))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, run: NotebookRun, session: Any, cells: list[dict[str, Any]]) -> None:
        wanted = set(run.msg_ids)
        ran = {cell["cell_id"]: cell for cell in cells if cell["msg_id"] in wanted}
        run.counts.update(
            finished=len(ran), errors=sum(cell["status"] == "error" for cell in ran.values())
        )
        try:
            await asyncio.to_thread(write_outputs, run.path, run.output_path, ran)
            run.status, run.written_at = WRITTEN, int(time.time() * 1000)
        except Exception as e:  # a disk error, a notebook changed into something unreadable
            log.warning("Writing the notebook run of %s failed: %s", run.session_id, e)
            run.status, run.error = FAILED, f"{type(e).__name__}: {e}"
        self.events.publish(
            {"event": "notebook_run", "session_id": run.session_id, "run": run.to_json()}
        )
        if run.shutdown_kernel and session.is_running:
            await session.shutdown("notebook run finished")

    def _count(self, run: NotebookRun) -> None:
        if run.status != RUNNING:
            return
        try:
            cells = self.supervisor.get(run.session_id).cells.to_json()
        except SupervisorError:
            return
        wanted = set(run.msg_ids)
        mine = [c for c in cells if c["msg_id"] in wanted]
        run.counts.update(
            finished=sum(c["status"] in ("ok", "error", "aborted") for c in mine),
            errors=sum(c["status"] == "error" for c in mine),
        )


def _check_paths(path: str, output_path: str) -> None:
    try:
        nbformat.read(path, as_version=4)
    except OSError as e:
        raise bad_request(f"Cannot read the notebook {path}: {e.strerror}") from None
    except ValueError as e:  # (its message quotes the file: not echoed)
        raise bad_request(
            f"Cannot read the notebook {path}: not a notebook ({type(e).__name__})"
        ) from None
    directory = os.path.dirname(output_path)
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise bad_request(f"Cannot write into {directory} (for {output_path})")


def write_outputs(path: str, output_path: str, ran: dict[str, dict[str, Any]]) -> None:
    """Each cell that ran (by cell id) gets its outputs and count, unless its source changed
    since; an aborted one is left cleared. Written atomically (a temporary file renamed)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        record = ran.get(cell.get("id"))
        if record is None or cell.cell_type != "code" or cell.source != record["code"]:
            continue
        if record["status"] == "aborted":
            cell.outputs, cell.execution_count = [], None
        else:
            cell.outputs = [nbformat.from_dict(o) for o in record["outputs"]]
            cell.execution_count = record["execution_count"]
    directory = os.path.dirname(output_path)
    fd, tmp = tempfile.mkstemp(prefix=".session-ext-", suffix=".ipynb", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
        mode = os.stat(output_path).st_mode & 0o777 if os.path.exists(output_path) else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, output_path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
