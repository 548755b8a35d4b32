"""A session's two views — its API model, and the record the store keeps — and the session
made again from a record by a later server (which, in durable mode, then re-attaches its
kernel: ``ActiveSession.reattach``)."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from session_ext.core.clock import rfc3339
from session_ext.core.config import SupervisorConfig
from session_ext.core.spec import SessionSpec
from session_ext.session.cells import NOT_RESTORED
from session_ext.session.queue import QueuedRequest
from session_ext.session.session import ActiveSession, SessionListener

if TYPE_CHECKING:
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager


def session_model(session: ActiveSession, pending_limit: int | None = None) -> dict[str, Any]:
    """The ActiveSession model of the API; ``pending_limit`` shortens the pending list
    (events)."""
    spec = session.spec
    return {
        "session_id": spec.session_id,
        "argv": spec.argv,
        "process_id": session.process_id,
        "username": spec.username,
        "display_name": spec.display_name,
        "language": spec.language,
        "interrupt_mode": spec.interrupt_mode,
        "initial_env": session.initial_env,
        "connected": session.connected,
        "started": rfc3339(session.started),
        "session_mode": spec.session_mode,
        "working_directory": session.working_directory,
        "notebook_uri": spec.notebook_uri,
        "input_prompt": spec.input_prompt,
        "continuation_prompt": spec.continuation_prompt,
        "execution_queue": session.queue.to_json(pending_limit),
        "status": session.status,
        "reason": session.reason,
        "kernel_info": session.kernel_info,
        "resource_usage": session.resource_usage,
        "idle_seconds": session.idle_seconds,
        "busy_seconds": session.busy_seconds,
        "socket_path": None,
        "kernel_id": session.kernel_id,
        "kernel_name": spec.kernel_name,
        "tags": spec.tags,
        "metadata": spec.metadata,
        "last_activity": rfc3339(session.last_activity),
        "waiting_input": session.waiting_input,
        "exit_code": session.exit_code,
        # not Kallichore's: where the kernel runs (provisioning.placement), null without one
        "provisioner": session.placement,
    }


def session_record(session: ActiveSession) -> dict[str, Any]:
    """Enough to list the session after a restart and, in durable mode, to re-attach."""
    return {
        "spec": session.spec.to_json(),
        "kernel_id": session.kernel_id,
        "status": session.status,
        "reason": session.reason,
        "exit_code": session.exit_code,
        "started": session.started,
        "working_directory": session.working_directory,
        "initial_env": session.initial_env,
        "kernel_info": session.kernel_info,
        **session.stored_kernel(),
    }


def request_record(request: QueuedRequest) -> dict[str, Any]:
    """A queued request as the store keeps it (durable mode); encoded on the store's worker
    (buffers as base64)."""
    return {
        "msg": request.msg,
        "source": request.source,
        "queued_at": request.queued_at,
        "agent": request.agent,
    }


def restored_request(row: dict[str, Any]) -> QueuedRequest:
    """A queued request again (its client is gone: its replies go to every client)."""
    record = row["request"]
    msg = record["msg"]
    msg["buffers"] = [base64.b64decode(b) for b in msg.get("buffers") or ()]
    request = QueuedRequest(msg, None, record.get("source") or "websocket")
    request.queued_at = record.get("queued_at") or request.queued_at
    request.agent = record.get("agent")
    request.started_at = row.get("started_at")
    request.may_start = request.start_requested = request.started_at is not None
    return request


def kernel_left_running(data: dict[str, Any]) -> bool:
    """Whether a stored session's kernel was left running for a later server to re-attach
    (durable mode)."""
    return bool(data.get("connection_info")) and data.get("status") not in (
        "exited",
        "uninitialized",
    )


def restored_session(
    data: dict[str, Any],
    history: list[dict[str, Any]],
    queued: list[dict[str, Any]],
    config: SupervisorConfig,
    kernel_manager: MappingKernelManager,
    listener: SessionListener,
    cells: list[dict[str, Any]] = (),
) -> ActiveSession:
    """A stored session as it was. One whose kernel was left running is `starting`, its
    stored queue held, until the kernel is re-attached (``ActiveSession.reattach``); any
    other is `exited` (or `uninitialized` if it had never started), what was queued for its
    kernel recorded as aborted."""
    reattach = kernel_left_running(data)
    if reattach:
        status = ("starting", "reattach")
    elif data.get("status") == "uninitialized":
        status = ("uninitialized", data.get("reason") or "created")
    else:
        status = ("exited", data.get("reason") or "server restarted")
    session = ActiveSession(
        SessionSpec.from_json(data["spec"]),
        config,
        kernel_manager,
        listener,
        kernel_id=data["kernel_id"],
        status=status,
    )
    session.exit_code = data.get("exit_code")
    session.started = data.get("started") or session.started
    session.working_directory = data.get("working_directory") or session.working_directory
    session.initial_env = data.get("initial_env") or {}
    session.kernel_info = data.get("kernel_info") or {}
    if session.cells is not None:
        session.cells.restore(list(cells))
    session.restore(history, [restored_request(row) for row in queued])
    if session.cells is not None:
        session.cells.abort_unfinished(NOT_RESTORED, keep=session.queue.__contains__)
    if queued and not reattach:
        session.abandon_queue("the kernel had exited")
    return session
