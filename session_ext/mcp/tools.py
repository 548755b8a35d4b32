"""The MCP tools: their names, argument schemas and descriptions (the contract agents see),
and what each does — always through the supervisor, so an agent's code waits in the session's
queue like anyone else's and is recorded in the history with ``source: "agent"``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import mcp_types as types
from jsonschema import Draft7Validator

from session_ext.core.errors import SupervisorError
from session_ext.mcp.executions import AgentExecution
from session_ext.mcp.workspaces import JUPYTER_WORKSPACE, Workspace
from session_ext.store.records import session_model

if TYPE_CHECKING:
    from session_ext.session.session import ActiveSession
    from session_ext.supervisor.registry import Supervisor

SESSION_ID = {"type": "string", "description": "The session's id, as list_sessions gives it."}
DEFAULT_TIMEOUT = 30.0

TOOLS: dict[str, tuple[str, dict[str, Any]]] = {
    "list_sessions": (
        "List the sessions (kernels) of this workspace: session_id, display_name, language, "
        "status (uninitialized, starting, idle, busy, offline, exited), session_mode, "
        "notebook_uri, queue_length (requests waiting) and last_activity. Start here to find "
        "the session_id the other tools need.",
        {"type": "object", "properties": {}, "additionalProperties": False},
    ),
    "start_session": (
        "Create and start a new session (a kernel) in this workspace and return its "
        "session_id, or, given the session_id of an uninitialized or exited session of this "
        "workspace, start that one. Without kernel_name the server's default kernel is used.",
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "kernel_name": {
                    "type": "string",
                    "description": "An installed kernelspec, e.g. python3.",
                },
                "display_name": {"type": "string", "description": "A name the user sees."},
                "working_directory": {"type": "string", "description": "An existing directory."},
                "session_id": {
                    "type": "string",
                    "pattern": "^[A-Za-z0-9._~-]{1,256}$",
                    "description": "The id for a new session, or a stopped session to start.",
                },
            },
        },
    ),
    "execute_code": (
        "Run code in a session, after whatever the user already queued there, and return "
        "what it printed, its result, its displays (images as images) and any error with its "
        "traceback; long output keeps its head and tail. If it has not finished within "
        "timeout_seconds the answer has status 'running', the output so far and an "
        "execution_id: the code keeps running; poll get_execution with that id (or "
        "interrupt_session to stop it).",
        {
            "type": "object",
            "required": ["session_id", "code"],
            "additionalProperties": False,
            "properties": {
                "session_id": SESSION_ID,
                "code": {"type": "string", "description": "The code to run."},
                "timeout_seconds": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 86400,
                    "default": DEFAULT_TIMEOUT,
                    "description": "How long to wait before answering 'running'.",
                },
            },
        },
    ),
    "get_execution": (
        "The status (running, ok, error, aborted) and the output so far of an execution "
        "that execute_code answered 'running' for.",
        {
            "type": "object",
            "required": ["session_id", "execution_id"],
            "additionalProperties": False,
            "properties": {
                "session_id": SESSION_ID,
                "execution_id": {"type": "string", "description": "From execute_code."},
                "wait_seconds": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 600,
                    "default": 0,
                    "description": "Wait up to this long for it to finish first.",
                },
            },
        },
    ),
    "interrupt_session": (
        "Interrupt the code running in a session (like the interrupt button); what was "
        "queued behind it is not run.",
        {
            "type": "object",
            "required": ["session_id"],
            "additionalProperties": False,
            "properties": {"session_id": SESSION_ID},
        },
    ),
    "restart_session": (
        "Restart a session's kernel: its variables are lost; what was queued is not run.",
        {
            "type": "object",
            "required": ["session_id"],
            "additionalProperties": False,
            "properties": {"session_id": SESSION_ID},
        },
    ),
    "get_history": (
        "What ran in a session, oldest first: each entry's input, output (clipped), error, "
        "status, source (agent, websocket, rest, jupyter_server) and agent name.",
        {
            "type": "object",
            "required": ["session_id"],
            "additionalProperties": False,
            "properties": {
                "session_id": SESSION_ID,
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 1000,
                    "default": 20,
                    "description": "How many of the newest entries.",
                },
            },
        },
    ),
}


def tool_list() -> list[types.Tool]:
    return [
        types.Tool(name=name, description=description, input_schema=schema)
        for name, (description, schema) in TOOLS.items()
    ]


class ToolError(Exception):
    """A refusal the agent can act on (answered as an error result, not a protocol error)."""


def text_result(text: str, structured: Any, is_error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=text)], structured_content=structured, is_error=is_error
    )


class Tools:
    def __init__(self, supervisor: Supervisor, max_output_chars: int, max_image_bytes: int):
        self.supervisor = supervisor
        self.max_output_chars = max_output_chars
        self.max_image_bytes = max_image_bytes

    async def call(
        self, workspace: Workspace, agent: str | None, name: str, arguments: dict[str, Any] | None
    ) -> types.CallToolResult:
        if name not in TOOLS:
            return text_result(
                f"Unknown tool {name!r}; the tools are {', '.join(TOOLS)}", None, True
            )
        args = arguments or {}
        errors = sorted(Draft7Validator(TOOLS[name][1]).iter_errors(args), key=str)
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "arguments"
            return text_result(f"Invalid {where}: {errors[0].message}", None, True)
        try:
            return await getattr(self, name)(workspace, agent, **args)
        except (SupervisorError, ToolError) as e:
            message = e.message if isinstance(e, SupervisorError) else str(e)
            return text_result(message, {"error": message}, True)

    # --- sessions of a workspace -------------------------------------------------------

    def members(self, workspace: Workspace) -> list[ActiveSession]:
        return [s for s in self.supervisor.all_sessions() if belongs(s, workspace.id)]

    def session(self, workspace: Workspace, session_id: str) -> ActiveSession:
        session = self.supervisor.find(session_id)
        if session is None or not belongs(session, workspace.id):
            raise ToolError(f"No session {session_id!r} in this workspace (see list_sessions)")
        return session

    # --- the tools ---------------------------------------------------------------------

    async def list_sessions(self, workspace: Workspace, agent: str | None) -> types.CallToolResult:
        sessions = [summary(s) for s in self.members(workspace)]
        lines = [
            f"{s['session_id']}: {s['display_name']} ({s['language']}, {s['status']}, "
            f"{s['queue_length']} queued)"
            for s in sessions
        ]
        return text_result(
            "\n".join(lines) or "No sessions in this workspace (start_session)",
            {"sessions": sessions},
        )

    async def start_session(
        self, workspace: Workspace, agent: str | None, session_id: str | None = None, **fields: Any
    ) -> types.CallToolResult:
        existing = self.supervisor.find(session_id) if session_id else None
        if existing is not None:
            session = self.session(workspace, session_id)
            if session.status not in ("uninitialized", "exited"):
                raise ToolError(
                    f"Session {session_id!r} is {session.status}: it is already "
                    "started (restart_session restarts it)"
                )
        else:
            body = {**fields, "workspace_id": workspace.id, "session_mode": "console"}
            if session_id:
                body["session_id"] = session_id
            session = await self.supervisor.create(body)
        await self.supervisor.start_session(session.session_id)
        info = summary(session)
        return text_result(
            f"Started session {session.session_id} ({info['display_name']}, {info['status']})", info
        )

    async def execute_code(
        self,
        workspace: Workspace,
        agent: str | None,
        session_id: str,
        code: str,
        timeout_seconds: float = DEFAULT_TIMEOUT,
    ) -> types.CallToolResult:
        session = self.session(workspace, session_id)
        await session.client_messages_released()  # (a restored session being re-attached)
        execution = AgentExecution(session_id, agent, self.max_output_chars, self.max_image_bytes)
        execution.execution_id = session.submit_execution(execution, code, source="agent")
        workspace.remember(session_id, execution)
        workspace.announce(
            {
                "event": "execution_started",
                "session_id": session_id,
                "execution_id": execution.execution_id,
                "agent": agent,
            }
        )
        return await self._outcome(execution, timeout_seconds)

    async def get_execution(
        self,
        workspace: Workspace,
        agent: str | None,
        session_id: str,
        execution_id: str,
        wait_seconds: float = 0,
    ) -> types.CallToolResult:
        self.session(workspace, session_id)
        execution = workspace.executions.get((session_id, execution_id))
        if execution is None:
            raise ToolError(
                f"No execution {execution_id!r} of session {session_id!r} here "
                "(only the newest executions of this workspace are kept)"
            )
        return await self._outcome(execution, wait_seconds)

    async def _outcome(self, execution: AgentExecution, wait: float) -> types.CallToolResult:
        if wait > 0:
            try:
                await asyncio.wait_for(asyncio.shield(execution.done), wait)
            except asyncio.TimeoutError:
                pass
        result = execution.result()
        text = result["output"] or "(no output)\n"
        if result["status"] == "running":
            text += (
                f"\n[still running; execution_id={execution.execution_id}: call "
                "get_execution for the rest, or interrupt_session to stop it]"
            )
        elif result["status"] == "aborted":
            text += "\n[aborted: it did not run to the end (interrupted, restarted or exited)]"
        content: list[Any] = [types.TextContent(text=text)]
        content += [
            types.ImageContent(data=data, mime_type=mime) for mime, data in execution.images
        ]
        return types.CallToolResult(
            content=content, structured_content=result, is_error=result["status"] == "error"
        )

    async def interrupt_session(
        self, workspace: Workspace, agent: str | None, session_id: str
    ) -> types.CallToolResult:
        session = self.session(workspace, session_id)
        await session.interrupt()
        return text_result(f"Interrupted session {session_id}", summary(session))

    async def restart_session(
        self, workspace: Workspace, agent: str | None, session_id: str
    ) -> types.CallToolResult:
        session = self.session(workspace, session_id)
        await self.supervisor.restart_session(session_id, None, None)
        return text_result(f"Restarted session {session_id}", summary(session))

    async def get_history(
        self, workspace: Workspace, agent: str | None, session_id: str, limit: int = 20
    ) -> types.CallToolResult:
        session = self.session(workspace, session_id)
        entries = session.get_history(limit)
        lines = []
        for e in entries:
            who = e.get("agent") or e.get("source") or "?"
            lines.append(f"--- [{e.get('status')}] by {who}\n>>> {e['input']}\n{e['output']}")
        return text_result("\n".join(lines) or "No executions yet", {"entries": entries})


def belongs(session: ActiveSession, workspace_id: str) -> bool:
    """A session's workspace: the one it was created in; jupyter_server's notebooks and
    consoles are the default workspace's."""
    owner = session.spec.workspace_id
    if owner is None and session.owned_by_server:
        owner = JUPYTER_WORKSPACE
    return owner == workspace_id


def summary(session: ActiveSession) -> dict[str, Any]:
    model = session_model(session, 0)
    return {
        "session_id": model["session_id"],
        "display_name": model["display_name"],
        "language": model["language"],
        "status": model["status"],
        "session_mode": model["session_mode"],
        "notebook_uri": model["notebook_uri"],
        "queue_length": model["execution_queue"]["length"],
        "last_activity": model["last_activity"],
    }
