"""A notebook session's cells as the supervisor saw them run: per cell id (the execute
request's ``metadata.cellId``, which JupyterLab sends), the latest execution with its outputs
in nbformat's shape, so a notebook opened again finds what ran while it was closed.

Bounded per cell and per session: past a bound the oldest outputs go and a marker output at
the front says how many. Outputs are decoded here (only for notebook sessions' cells): the
hot path of consoles and other sessions never reaches this module.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

from session_ext.core.clock import now_ms
from session_ext.session.outputs import nbformat_output
from session_ext.session.queue import QueuedRequest
from session_ext.wire.messages import KernelMessage

# iopub messages that change a cell's outputs or count (update_display_data is handled
# apart: it may change any cell)
CELL_MESSAGES = frozenset(
    ("stream", "display_data", "execute_result", "error", "clear_output", "execute_input")
)
FINISHED = ("ok", "error", "aborted")
SERVER_STOPPED = "the server stopped, and the notebook's kernel with it, before it finished"
NOT_RESTORED = "its request was not in the restored queue"


def _size(output: dict[str, Any]) -> int:
    return len(json.dumps(output, default=str))


class _Output:
    """One output; a stream's text kept as chunks (appending to one long string per message
    would copy it each time)."""

    __slots__ = ("chunks", "display_id", "output", "size")

    def __init__(self, output: dict[str, Any], display_id: str | None = None):
        self.output = output
        self.display_id = display_id
        self.chunks: deque[str] | None = None
        if output["output_type"] == "stream":
            self.chunks = deque([output.pop("text")])
        self.size = _size(output) + (len(self.chunks[0]) if self.chunks else 0)

    def append_text(self, text: str) -> None:
        self.chunks.append(text)
        self.size += len(text)

    def drop_text(self, count: int) -> None:
        """Drop the first ``count`` characters of a stream's text."""
        self.size -= count
        while count:
            first = self.chunks[0]
            if len(first) <= count:
                self.chunks.popleft()
                count -= len(first)
            else:
                self.chunks[0] = first[count:]
                count = 0

    def to_json(self) -> dict[str, Any]:
        if self.chunks is None:
            return self.output
        if len(self.chunks) > 1:
            self.chunks = deque(["".join(self.chunks)])
        return {**self.output, "text": self.chunks[0] if self.chunks else ""}


class CellExecution:
    """The latest execution of one cell."""

    __slots__ = (
        "_clear_on_next",
        "_outputs",
        "cell_id",
        "chars_dropped",
        "code",
        "execution_count",
        "finished_at",
        "msg_id",
        "outputs_dropped",
        "queued_at",
        "reason",
        "size",
        "started_at",
        "status",
    )

    def __init__(self, cell_id: str, msg_id: str, code: str, queued_at: int):
        self.cell_id = cell_id
        self.msg_id = msg_id
        self.code = code
        self.status = "queued"
        self.execution_count: int | None = None
        self._outputs: list[_Output] = []
        self.size = len(code)  # bytes of code and outputs
        self.outputs_dropped = 0
        self.chars_dropped = 0  # of a stream output too large on its own
        self.queued_at = queued_at
        self.started_at: int | None = None
        self.finished_at: int | None = None
        self.reason: str | None = None
        self._clear_on_next = False  # clear_output(wait=True): clear when the next one comes

    @property
    def outputs(self) -> list[dict[str, Any]]:
        return [o.to_json() for o in self._outputs]

    @property
    def _marked(self) -> bool:
        """Whether the first output is the marker of dropped output."""
        return bool(self.outputs_dropped or self.chars_dropped)

    def _insert(self, index: int, output: _Output) -> None:
        self._outputs.insert(index, output)
        self.size += output.size

    def _pop(self, index: int) -> None:
        self.size -= self._outputs.pop(index).size

    def add(self, output: dict[str, Any], display_id: str | None = None) -> None:
        if self._clear_on_next:
            self.clear()
        last = self._outputs[-1] if len(self._outputs) > int(self._marked) else None
        if (
            output["output_type"] == "stream"
            and last is not None
            and last.chunks is not None
            and last.output["name"] == output["name"]
        ):
            last.append_text(output["text"])
            self.size += len(output["text"])
            return
        self._insert(len(self._outputs), _Output(output, display_id))

    def clear(self, wait: bool = False) -> None:
        if wait:
            self._clear_on_next = True
            return
        self._clear_on_next = False
        self._outputs = []
        self.size = len(self.code)
        self.outputs_dropped = self.chars_dropped = 0

    def update_display(self, display_id: str, data: dict, metadata: dict) -> bool:
        changed = False
        for i, known in enumerate(self._outputs):
            if known.display_id == display_id:
                self._pop(i)
                self._insert(
                    i, _Output({**known.output, "data": data, "metadata": metadata}, display_id)
                )
                changed = True
        return changed

    def drop_oldest(self, limit: int) -> None:
        """Drop the oldest outputs until the cell takes at most ``limit`` bytes: whole
        outputs first, then the head of a stream output too large on its own; a marker in
        front says how much went."""
        if self.size <= limit:
            return
        first = int(self._marked)
        while len(self._outputs) > first and self.size > limit:
            excess = self.size - limit
            oldest = self._outputs[first]
            text = oldest.size - _size(oldest.output) if oldest.chunks is not None else 0
            if len(self._outputs) == first + 1 and text > excess:
                oldest.drop_text(excess)
                self.size -= excess
                self.chars_dropped += excess
            else:
                self._pop(first)
                self.outputs_dropped += 1
        if first:
            self._pop(0)
        marker = {
            "output_type": "stream",
            "name": "stderr",
            "text": f"[session_ext: {self.outputs_dropped} earlier outputs and "
            f"{self.chars_dropped} characters of this cell's output were dropped to stay "
            "within the output limit]\n",
        }
        self._insert(0, _Output(marker))

    def to_json(self) -> dict[str, Any]:
        data = {
            "cell_id": self.cell_id,
            "msg_id": self.msg_id,
            "code": self.code,
            "status": self.status,
            "execution_count": self.execution_count,
            "outputs": self.outputs,
            "outputs_dropped": self.outputs_dropped,
            "queued_at": self.queued_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }
        if self.reason is not None:
            data["reason"] = self.reason
        return data

    def record(self) -> dict[str, Any]:
        """What the store keeps (the API view plus the display ids of the outputs)."""
        return {
            **self.to_json(),
            "display_ids": [o.display_id for o in self._outputs],
            "chars_dropped": self.chars_dropped,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> CellExecution:
        cell = cls(data["cell_id"], data["msg_id"], data.get("code", ""), data["queued_at"])
        cell.status = data["status"]
        cell.execution_count = data.get("execution_count")
        outputs = list(data.get("outputs") or [])
        ids = list(data.get("display_ids") or [])
        if len(ids) != len(outputs):
            ids = [None] * len(outputs)
        for output, display_id in zip(outputs, ids, strict=True):
            cell._insert(len(cell._outputs), _Output(dict(output), display_id))
        cell.outputs_dropped = data.get("outputs_dropped", 0)
        cell.chars_dropped = data.get("chars_dropped", 0)
        cell.started_at = data.get("started_at")
        cell.finished_at = data.get("finished_at")
        cell.reason = data.get("reason")
        return cell


class NotebookCells:
    """The cells of one notebook session. ``on_change(cell, urgent)`` tells the owner a cell
    changed (``urgent``: its status did, else only its outputs)."""

    def __init__(
        self,
        max_cell_bytes: int,
        max_session_bytes: int,
        on_change: Callable[[CellExecution, bool], None],
    ):
        self.max_cell_bytes = max_cell_bytes
        self.max_session_bytes = max_session_bytes
        self.on_change = on_change
        self.cells: dict[str, CellExecution] = {}  # cell id -> its latest execution
        self._by_msg: dict[str, CellExecution] = {}  # msg_id -> a queued or running cell's
        self.total = 0  # bytes of every cell

    @staticmethod
    def cell_id(request: QueuedRequest) -> str | None:
        cell_id = (request.msg.get("metadata") or {}).get("cellId")
        return cell_id if isinstance(cell_id, str) and cell_id else None

    def queued(self, request: QueuedRequest) -> None:
        cell_id = self.cell_id(request)
        if cell_id is None:
            return
        old = self.cells.get(cell_id)
        if old is not None and old.status not in FINISHED:
            self._by_msg.pop(old.msg_id, None)  # (its outcome still lands: by msg_id, gone)
        cell = CellExecution(cell_id, request.msg_id, request.code, request.queued_at)
        self.total += cell.size - (old.size if old is not None else 0)
        self.cells[cell_id] = cell
        self._by_msg[request.msg_id] = cell
        self.on_change(cell, True)

    def started(self, request: QueuedRequest) -> None:
        cell = self._by_msg.get(request.msg_id)
        if cell is not None:
            cell.status = "running"
            cell.started_at = request.started_at or now_ms()
            self.on_change(cell, True)

    def finished(self, msg_id: str, status: str, reason: str | None = None) -> None:
        cell = self._by_msg.pop(msg_id, None)
        if cell is None:
            return
        cell.status = status
        cell.finished_at = now_ms()
        cell.reason = reason
        self.on_change(cell, True)

    def execution_count(self, msg_id: str | None, count: Any) -> None:
        cell = self._by_msg.get(msg_id) if msg_id else None
        if cell is not None and isinstance(count, int) and cell.execution_count != count:
            cell.execution_count = count
            self.on_change(cell, True)

    def kernel_message(self, msg: KernelMessage) -> None:
        """An iopub message: an output of a queued or running cell, or a display update."""
        msg_type = msg.msg_type
        if msg_type == "update_display_data":
            self._update_display(msg)
            return
        if msg_type not in CELL_MESSAGES:
            return
        cell = self._by_msg.get(msg.parent_msg_id or "")
        if cell is None:
            return
        content = msg.content
        if msg_type == "execute_input":
            self.execution_count(cell.msg_id, content.get("execution_count"))
            return
        before = cell.size
        if msg_type == "clear_output":
            cell.clear(wait=bool(content.get("wait")))
        else:
            display_id = (content.get("transient") or {}).get("display_id")
            cell.add(nbformat_output(msg_type, content), display_id)
            if msg_type == "execute_result" and isinstance(content.get("execution_count"), int):
                cell.execution_count = content["execution_count"]
        self.total += cell.size - before
        self._bound(cell)
        self.on_change(cell, False)

    def _update_display(self, msg: KernelMessage) -> None:
        content = msg.content
        display_id = (content.get("transient") or {}).get("display_id")
        if not display_id:
            return
        for cell in self.cells.values():
            before = cell.size
            if cell.update_display(
                display_id, content.get("data") or {}, content.get("metadata") or {}
            ):
                self.total += cell.size - before
                self._bound(cell)
                self.on_change(cell, False)

    def _bound(self, cell: CellExecution) -> None:
        """The cell within its bound, then the session within its own: the oldest cells'
        outputs go first."""
        before = cell.size
        cell.drop_oldest(self.max_cell_bytes)
        self.total += cell.size - before
        if self.total <= self.max_session_bytes:
            return
        for other in sorted(self.cells.values(), key=lambda c: c.queued_at):
            before = other.size
            other.drop_oldest(max(0, before - (self.total - self.max_session_bytes)))
            self.total += other.size - before
            if other is not cell and other.size != before:
                self.on_change(other, False)
            if self.total <= self.max_session_bytes:
                break

    def abort_unfinished(self, reason: str, keep: Callable[[str], bool] = lambda _: False) -> None:
        """Restored cells still queued or running whose request will not run (``keep``: the
        msg_ids that still will)."""
        for msg_id in list(self._by_msg):
            if not keep(msg_id):
                self.finished(msg_id, "aborted", reason)

    def to_json(self) -> list[dict[str, Any]]:
        return [c.to_json() for c in sorted(self.cells.values(), key=lambda c: c.queued_at)]

    def restore(self, records: list[dict[str, Any]]) -> None:
        """Cells stored by an earlier server; those that were queued or running are matched
        to their requests again by msg_id (``abort_unfinished`` ends the ones not restored)."""
        for data in records:
            cell = CellExecution.from_record(data)
            old = self.cells.get(cell.cell_id)
            self.total += cell.size - (old.size if old is not None else 0)
            self.cells[cell.cell_id] = cell
            if cell.status not in FINISHED:
                self._by_msg[cell.msg_id] = cell
