"""jupyter_server's sessions (a notebook or console in JupyterLab, /api/sessions) mirrored as
the supervisor's ActiveSessions: same id, the server's kernel, the notebook's URI.

A session is listed at once when /api/sessions creates it; attaching to its kernel (once the
kernel is ready: pending kernels) happens beside the request, never inside it. Its kernel
stays the server's: deleting the session lets go of it, and jupyter_server's interrupt and
restart (JupyterLab's buttons) reach the session's queue (``on_kernel_action``). A
notebook's cells as an earlier server left them go to the notebook's next session.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from session_ext.core.config import SupervisorConfig
from session_ext.core.errors import StartupError
from session_ext.core.spec import SessionSpec
from session_ext.session.cells import SERVER_STOPPED

if TYPE_CHECKING:
    from jupyter_client.kernelspec import KernelSpec

    from session_ext.session.session import ActiveSession
    from session_ext.supervisor.registry import Supervisor

log = logging.getLogger(__name__)

MODES = {"notebook": "notebook", "console": "console"}  # anything else: background


def os_path(config: SupervisorConfig, api_path: str) -> str:
    return os.path.join(config.server_root, *api_path.split("/"))


def notebook_uri(config: SupervisorConfig, model: dict[str, Any]) -> str | None:
    """The notebook's file:// URI (None for consoles and other sessions)."""
    if model.get("type") != "notebook":
        return None
    return Path(os_path(config, model.get("path") or "")).as_uri()


def mirrored_spec(
    config: SupervisorConfig, model: dict[str, Any], kernel_spec: KernelSpec
) -> SessionSpec:
    path = model.get("path") or ""
    return SessionSpec(
        session_id=model["id"],
        display_name=kernel_spec.display_name,  # the document's path is shown beside it
        language=kernel_spec.language,
        username=config.username,
        input_prompt=">>> ",
        continuation_prompt="... ",
        argv=list(kernel_spec.argv),
        session_mode=MODES.get(model.get("type"), "background"),
        working_directory=os.path.dirname(os_path(config, path)),
        env=[],
        interrupt_mode=kernel_spec.interrupt_mode,
        startup_environment="none",
        notebook_uri=notebook_uri(config, model),
        kernel_name=(model.get("kernel") or {}).get("name"),
        metadata={"path": path, "source": "jupyter_server"},
    )


class JupyterSessions:
    """The mirror of one server's /api/sessions in its supervisor."""

    def __init__(self, supervisor: Supervisor):
        self.supervisor = supervisor
        self.config = supervisor.config
        self._attaching: dict[str, asyncio.Task] = {}  # session id -> its attach
        self._background: set[asyncio.Task] = set()

    def session_for_kernel(self, kernel_id: str) -> ActiveSession | None:
        """Called for every message JupyterLab sends: a dict lookup, not a scan."""
        session = self.supervisor.by_kernel(kernel_id)
        return session if session is not None and session.is_running else None

    def attaching_to_kernel(self, kernel_id: str) -> asyncio.Task | None:
        """The attach in progress to this jupyter_server kernel, if any."""
        session = self.supervisor.by_kernel(kernel_id)
        return self._attaching.get(session.session_id) if session is not None else None

    def mirror(self, model: dict[str, Any]) -> None:
        """A session of /api/sessions was created or changed."""
        kernel_id = (model.get("kernel") or {}).get("id")
        session = self.supervisor.find(model["id"])
        path = model.get("path") or ""
        uri = notebook_uri(self.config, model)
        if session is not None and session.kernel_id == kernel_id:
            if session.spec.notebook_uri != uri or session.spec.metadata.get("path") != path:
                session.spec.notebook_uri = uri
                session.spec.metadata["path"] = path
                # JupyterLab creates a notebook's session on a made-up path (a UUID) and
                # then renames it to the notebook's: the cells of an earlier server are
                # the notebook's, found by its real path.
                self._take_earlier_cells(session)
                self.supervisor.observer.session_updated(session)
            return
        if session is not None:  # the notebook changed kernels
            self.forget(session.session_id)
        kernel_manager = self.supervisor.kernel_manager
        if not kernel_id or kernel_id not in kernel_manager:
            return
        spec = mirrored_spec(self.config, model, kernel_manager.get_kernel(kernel_id).kernel_spec)
        session = self.supervisor.factory.server_session(spec, kernel_id)
        self.supervisor.add(session)
        self._take_earlier_cells(session)
        self._attaching[session.session_id] = self._beside(self._attach(session))

    def _take_earlier_cells(self, session: ActiveSession) -> None:
        """A notebook's cells as an earlier server left them (its kernel stopped with it)."""
        earlier = self.supervisor.restorer.take_earlier_cells(session.spec.notebook_uri)
        if earlier is None or session.cells is None:
            return
        earlier_id, records = earlier
        session.cells.restore(records)
        session.cells.abort_unfinished(SERVER_STOPPED)
        writes = self.supervisor.observer.writes
        for cell in session.cells.cells.values():
            writes.cell(session, cell, True)
        writes.forget_cells(earlier_id)

    async def _attach(self, session: ActiveSession) -> None:
        try:
            await session.attach_server_kernel()
        except StartupError as e:
            log.warning("Could not attach to the kernel of %s: %s", session.session_id, e)
        finally:
            if self._attaching.get(session.session_id) is asyncio.current_task():
                del self._attaching[session.session_id]  # (not a newer one of the same id)

    def forget(self, session_id: str) -> None:
        """Stop mirroring a jupyter_server session (its kernel is the server's business)."""
        session = self.supervisor.find(session_id)
        if session is None or not session.owned_by_server:
            return
        self.supervisor.remove(session_id)
        self.supervisor.observer.writes.forget_cells(session_id)
        attaching = self._attaching.pop(session_id, None)
        if attaching is not None:
            attaching.cancel()
        self._beside(self._let_go(session))

    @staticmethod
    async def _let_go(session: ActiveSession) -> None:
        await session.detach_kernel()
        if session.is_running:
            session.on_kernel_exited(None, "session closed")

    def _beside(self, work: Coroutine[Any, Any, None]) -> asyncio.Task:
        """Work that jupyter_server's requests do not wait for (finished, or for attaching
        cancelled, when the server stops)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def on_kernel_action(self, kernel_id: str, action: str | None) -> None:
        """jupyter_server interrupted or restarted a kernel (e.g. JupyterLab's buttons)."""
        session = self.session_for_kernel(kernel_id)
        if session is None:
            return
        if action == "interrupt":
            session.on_interrupted()
        elif action == "restart":
            session.on_kernel_restarted()

    async def stop(self) -> None:
        """Before the supervisor stops: attaches cancelled (a kernel nobody talked to yet),
        letting go finished (quick)."""
        for task in list(self._attaching.values()):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
