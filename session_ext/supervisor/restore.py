"""Sessions stored by an earlier server, in two steps, so that a client is never kept waiting
for kernels (Positron gives a durable server's handshake 10 s):

1. ``restore``: every stored session is listed again (same ids, metadata, history, queue). A
   session whose kernel was left running is `starting`, and what clients send it waits.
2. ``reattach`` (once the server has handed its state over): those kernels are connected to
   again, all at once, in the background. Each session then goes on (`idle`, or `busy` with
   the request it was running), or, its kernel gone, is `exited` with its queue aborted.

A session's stored row is not rewritten until its kernel is re-attached (it holds what the
re-attach needs). The cells of jupyter_server's sessions (stored without a session: the
server keeps those) wait for the next session of their notebook (``take_earlier_cells``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from session_ext.core.errors import StartupError
from session_ext.store.records import kernel_left_running, restored_session

if TYPE_CHECKING:
    from session_ext.session.session import ActiveSession
    from session_ext.supervisor.registry import Supervisor

log = logging.getLogger(__name__)

CellRecords = list[dict[str, Any]]


class Restorer:
    def __init__(self, supervisor: Supervisor):
        self.supervisor = supervisor
        self._pending: dict[str, tuple[ActiveSession, dict[str, Any]]] = {}  # not yet begun
        self._done: dict[str, asyncio.Future] = {}  # session id -> its re-attach's end
        self._task: asyncio.Task | None = None
        # notebook_uri -> (session id, cell records) of jupyter_server sessions of an earlier
        # server: the next session of that notebook takes them over
        self._earlier_cells: dict[str, tuple[str, CellRecords]] = {}

    async def restore(self) -> None:
        """List the stored sessions again (quick: no kernel is talked to)."""
        supervisor = self.supervisor
        observer = supervisor.observer
        cells = await supervisor.store.load_cells()
        for data, history, queued in await supervisor.store.load():
            session_id = data["spec"]["session_id"]
            if supervisor.find(session_id) is not None:
                continue
            _, records = cells.pop(session_id, (None, []))
            session = restored_session(
                data,
                history,
                queued,
                supervisor.config,
                supervisor.kernel_manager,
                observer,
                records,
            )
            if kernel_left_running(data):
                session.hold_client_messages()
                observer.reattaching.add(session_id)
                self._pending[session_id] = (session, data)
                self._done[session_id] = asyncio.get_running_loop().create_future()
            supervisor.add(session)
        for session_id, (uri, records) in cells.items():  # of jupyter_server's sessions
            if uri and _newest(records) > _newest(self._earlier_cells.get(uri, ("", []))[1]):
                self._earlier_cells[uri] = (session_id, records)

    def reattach(self) -> asyncio.Task:
        """Re-attach the restored sessions' kernels, in the background; the task."""
        pending, self._pending = self._pending, {}
        self._task = asyncio.ensure_future(
            asyncio.gather(*(self._reattach(s, data) for s, data in pending.values()))
        )
        return self._task

    async def _reattach(self, session: ActiveSession, data: dict[str, Any]) -> None:
        try:
            await session.reattach(data)
            log.info("Re-attached session %s to its kernel", session.session_id)
        except StartupError as e:
            log.warning("Session %s: kernel not re-attached: %s", session.session_id, e)
            session.mark_exited("kernel exited while the server was down")
        except Exception:
            log.exception("Re-attaching session %s", session.session_id)
            session.mark_exited("could not re-attach the kernel")
        self.supervisor.observer.reattaching.discard(session.session_id)
        session.release_client_messages()
        self.supervisor.observer.writes.session(session)
        done = self._done.pop(session.session_id, None)
        if done is not None:
            done.set_result(None)

    async def settled(self, session_id: str) -> None:
        """Until the session's kernel is re-attached (or given up), if it is being restored:
        what would stop, restart or delete it waits for that."""
        done = self._done.get(session_id)
        if done is not None:
            await asyncio.shield(done)

    def take_earlier_cells(self, notebook_uri: str | None) -> tuple[str, CellRecords] | None:
        """The cells an earlier server kept of this notebook's session, once."""
        return self._earlier_cells.pop(notebook_uri or "", None)

    async def stop(self) -> None:
        """The server stops: re-attaches not finished are left (their stored rows intact, for
        the next server)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for done in self._done.values():
            done.cancel()
        self._done.clear()


def _newest(records: CellRecords) -> int:
    return max((r.get("queued_at") or 0 for r in records), default=-1)
