"""Typed views of what the server answers (pydantic models of ``openapi.yaml``'s shapes).

Every model keeps the fields it does not name (``extra="allow"``), so a newer server's
additions reach the caller; ``raw`` is the JSON as it came."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlparse

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @property
    def raw(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class QueuedRequest(Model):
    msg_id: str
    code: str = ""
    queued_at: int | None = None
    source: str | None = None
    agent: str | None = None


class QueueSummary(Model):
    """``GET .../queue``: the running request and the waiting ones, in order."""

    active: QueuedRequest | None = None
    length: int = 0
    pending: list[QueuedRequest] = Field(default_factory=list)

    def position(self, msg_id: str) -> int | None:
        """How many requests are ahead of ``msg_id`` (0: it runs now); None if not queued."""
        if self.active is not None and self.active.msg_id == msg_id:
            return 0
        for i, request in enumerate(self.pending):
            if request.msg_id == msg_id:
                return i + (self.active is not None)
        return None


class SessionInfo(Model):
    """An ActiveSession as the server describes it."""

    session_id: str
    display_name: str = ""
    language: str = ""
    status: str = "uninitialized"
    reason: str = ""
    session_mode: str = "console"
    kernel_name: str | None = None
    kernel_id: str | None = None
    notebook_uri: str | None = None
    working_directory: str = ""
    connected: bool = False
    process_id: int | None = None
    resource_usage: dict[str, Any] | None = None
    execution_queue: dict[str, Any] = Field(default_factory=dict)
    idle_seconds: int = 0
    busy_seconds: int = 0
    last_activity: str | None = None
    waiting_input: bool = False
    exit_code: int | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def queue_length(self) -> int:
        return int(self.execution_queue.get("length") or 0)

    @property
    def memory_bytes(self) -> int | None:
        usage = self.resource_usage or {}
        return usage.get("memory_bytes")

    @property
    def notebook_path(self) -> str | None:
        """The notebook's path on the server's machine (from ``notebook_uri``)."""
        if not self.notebook_uri:
            return None
        parsed = urlparse(self.notebook_uri)
        return unquote(parsed.path) if parsed.scheme == "file" else self.notebook_uri

    @property
    def running(self) -> bool:
        return self.status in ("idle", "busy", "offline", "starting")


class ServerStatus(Model):
    sessions: int = 0
    active: int = 0
    busy: bool = False
    uptime_seconds: int = 0
    version: str = ""
    process_id: int | None = None
    server_id: str = ""


class ExecutionError(Model):
    """The exception a request raised (the execute_reply's ``ename``, ``evalue``,
    ``traceback``)."""

    ename: str = ""
    evalue: str = ""
    traceback: list[str] = Field(default_factory=list)


class ExecuteReply(Model):
    """The outcome of one execute request: its reply, and every output in nbformat's shape
    (consecutive streams merged, ``clear_output`` and ``update_display_data`` applied)."""

    msg_id: str
    status: str  # ok | error | aborted
    execution_count: int | None = None
    outputs: list[dict[str, Any]] = Field(default_factory=list)
    error: ExecutionError | None = None
    user_expressions: dict[str, Any] = Field(default_factory=dict)
    payload: list[dict[str, Any]] = Field(default_factory=list)
    reason: str | None = None  # why it was aborted, when the server said

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def stdout(self) -> str:
        return _stream(self.outputs, "stdout")

    @property
    def stderr(self) -> str:
        return _stream(self.outputs, "stderr")

    @property
    def result(self) -> dict[str, Any] | None:
        """The execute_result's MIME bundle, if the code produced one."""
        for output in self.outputs:
            if output["output_type"] == "execute_result":
                return output["data"]
        return None


def _stream(outputs: list[dict[str, Any]], name: str) -> str:
    return "".join(
        o["text"] for o in outputs if o["output_type"] == "stream" and o.get("name") == name
    )


class HistoryEntry(Model):
    msg_id: str
    input: str = ""
    output: str = ""
    status: str = ""
    source: str = ""
    agent: str | None = None
    queued_at: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    truncated: bool = False
    error: dict[str, Any] | None = None


class CellExecution(Model):
    """The latest execution of one notebook cell, as the server kept it."""

    cell_id: str
    msg_id: str
    code: str = ""
    status: str = "queued"  # queued | running | ok | error | aborted
    execution_count: int | None = None
    outputs: list[dict[str, Any]] = Field(default_factory=list)
    outputs_dropped: int = 0
    queued_at: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("ok", "error", "aborted")


class NotebookRun(Model):
    """A notebook run the server writes back into its .ipynb when it ends."""

    session_id: str
    path: str
    output_path: str
    status: str  # running | written | failed
    cells: int = 0
    finished: int = 0
    errors: int = 0
    shutdown_kernel: bool = False
    error: str | None = None
    written_at: int | None = None


class Event(Model):
    """One frame of ``/events``: ``event`` names it (snapshot, session_created, status,
    session_updated, queue, session_deleted, resource_usage, notebook_run)."""

    event: str
    session_id: str | None = None
