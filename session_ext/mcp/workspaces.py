"""MCP workspaces: who may reach which sessions through the MCP server.

A workspace has an id, a display name and a bearer token of its own (distinct from the
server's token; it opens that workspace's MCP URL and nothing else). Sessions created with
its ``workspace_id`` belong to it; jupyter_server's notebooks and consoles belong to the
default workspace (``JUPYTER_WORKSPACE``) when there is one. Workspaces are kept in the
session store (so a restarted server knows them); re-registering with an earlier id and
token keeps that token valid in any case, as Positron's client expects.

The workspace's channel (``GET /mcp/workspaces/{id}/channel``) is a websocket per window:
the workspace is ``connected`` while one is open, and agent activity is announced on it.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from session_ext.core.clock import now_ms, rfc3339
from session_ext.core.errors import SupervisorError, bad_request
from session_ext.core.validation import given

if TYPE_CHECKING:
    from session_ext.mcp.executions import AgentExecution
    from session_ext.store.database import SessionStore

log = logging.getLogger(__name__)

JUPYTER_WORKSPACE = "jupyter"  # jupyter_server's notebooks and consoles
RECORD_KIND = "mcp_workspace"  # in the session store (its named records)
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{32,128}")  # "well formed" (else a new one is issued)
KEEP_EXECUTIONS = 200  # agent executions kept per workspace for get_execution
KEEP_IMAGES = 4  # of which the newest keep their images

Subscriber = Callable[[str], None]


def workspace_not_found(workspace_id: str) -> SupervisorError:
    return SupervisorError(404, "not_found", f"MCP workspace {workspace_id!r} not found")


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 43 characters


def slug(name: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return words[:40].strip("-") or "workspace"


class McpClient:
    """An agent connected to a workspace (one MCP session); the bridge says its pid and
    working directory."""

    def __init__(self, number: int, info: dict[str, Any]):
        self.id = number
        self.info = info
        self.connected_at = time.time()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **{k: v for k, v in self.info.items() if v is not None},
            "connected_at": rfc3339(self.connected_at),
        }


class Workspace:
    def __init__(self, workspace_id: str, display_name: str, token: str):
        self.id = workspace_id
        self.display_name = display_name
        self.token = token
        self.port = 0  # the MCP listener's port when it was last registered (kept, to reuse)
        self.channels: set[Subscriber] = set()
        self.clients: dict[str, McpClient] = {}  # MCP session id -> client
        self._client_numbers = 0
        # (session_id, execution_id) -> AgentExecution, newest last
        self.executions: OrderedDict[tuple[str, str], AgentExecution] = OrderedDict()

    @property
    def connected(self) -> bool:
        return bool(self.channels)

    def record(self) -> dict[str, Any]:
        return {
            "workspace_id": self.id,
            "display_name": self.display_name,
            "token": self.token,
            "port": self.port,
        }

    def status(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "display_name": self.display_name,
            "connected": self.connected,
            "clients": [c.to_json() for c in self.clients.values()],
        }

    # --- the channel -------------------------------------------------------------------

    def announce(self, event: dict[str, Any]) -> None:
        """Tell the workspace's windows what an agent did."""
        if not self.channels:
            return
        frame = json.dumps({**event, "workspace_id": self.id, "timestamp": now_ms()})
        for subscriber in list(self.channels):
            subscriber(frame)

    def add_client(self, mcp_session: str, info: dict[str, Any]) -> McpClient:
        client = self.clients.get(mcp_session)
        if client is None:
            self._client_numbers += 1
            client = self.clients[mcp_session] = McpClient(self._client_numbers, info)
            self.announce({"event": "client_connected", "client": client.to_json()})
        return client

    def remove_client(self, mcp_session: str) -> None:
        client = self.clients.pop(mcp_session, None)
        if client is not None:
            self.announce({"event": "client_disconnected", "client": client.to_json()})

    def remember(self, session_id: str, execution: AgentExecution) -> None:
        """Keep an execution for get_execution: the newest KEEP_EXECUTIONS, and the images
        only of the newest KEEP_IMAGES (memory stays bounded by a few image budgets)."""
        self.executions[(session_id, execution.execution_id)] = execution
        while len(self.executions) > KEEP_EXECUTIONS:
            self.executions.popitem(last=False)
        for older in list(self.executions.values())[:-KEEP_IMAGES]:
            older.release_images()


class WorkspaceRegistry:
    def __init__(self, store: SessionStore, secrets_: tuple[str, ...] = ()):
        self.store = store
        self.secrets = secrets_  # the server's token: never a workspace's
        self.workspaces: dict[str, Workspace] = {}

    def __iter__(self):
        return iter(list(self.workspaces.values()))

    def __len__(self) -> int:
        return len(self.workspaces)

    def get(self, workspace_id: str) -> Workspace:
        workspace = self.workspaces.get(workspace_id)
        if workspace is None:
            raise workspace_not_found(workspace_id)
        return workspace

    def authenticate(self, workspace_id: str, token: str | None) -> Workspace | None:
        """The workspace if ``token`` is its token (compared in constant time), else None."""
        workspace = self.workspaces.get(workspace_id)
        if workspace is None or not token:
            return None
        if hmac.compare_digest(workspace.token.encode(), token.encode()):
            return workspace
        return None

    async def restore(self) -> None:
        for record in await self.store.load_records(RECORD_KIND):
            workspace = Workspace(record["workspace_id"], record["display_name"], record["token"])
            workspace.port = record.get("port") or 0
            self.workspaces[workspace.id] = workspace

    def _usable_token(self, token: Any, workspace_id: str) -> bool:
        if not isinstance(token, str) or not TOKEN_PATTERN.fullmatch(token):
            return False
        if any(hmac.compare_digest(token.encode(), s.encode()) for s in self.secrets if s):
            return False  # a workspace token must open nothing but its workspace
        return not any(w.token == token for w in self.workspaces.values() if w.id != workspace_id)

    async def register(self, body: Any) -> Workspace:
        """POST /mcp/workspaces: a new workspace, or the known one again (same token; its
        display name updated). A well-formed ``token`` given for an id the server does not
        know (it was restarted) is kept, so agents configured with it keep working."""
        fields = given("McpWorkspaceRegistration", body)
        display_name = fields["display_name"]
        if not display_name.strip():
            raise bad_request("Field 'display_name' must not be empty")
        workspace_id = fields.get("workspace_id") or f"{slug(display_name)}-{uuid.uuid4().hex[:6]}"
        workspace = self.workspaces.get(workspace_id)
        if workspace is None:
            token = fields.get("token")
            if not self._usable_token(token, workspace_id):
                token = new_token()
            workspace = Workspace(workspace_id, display_name, token)
        elif workspace.display_name == display_name:
            return workspace
        else:
            workspace.display_name = display_name
        await self.store.save_record(
            RECORD_KIND, workspace.id, workspace.record()
        )  # 507 if it cannot
        self.workspaces[workspace.id] = workspace
        return workspace

    def ensure(self, workspace_id: str, display_name: str) -> Workspace:
        """A workspace the server itself keeps (JupyterLab's): the stored one, else new."""
        workspace = self.workspaces.get(workspace_id)
        if workspace is None:
            workspace = Workspace(workspace_id, display_name, new_token())
            self.workspaces[workspace_id] = workspace
            self.store.save_record(RECORD_KIND, workspace.id, workspace.record())
        return workspace

    def listening_on(self, port: int) -> None:
        """Remember the MCP listener's port with each workspace (a restarted server binds it
        again, so the URLs agents were given stay valid)."""
        for workspace in self.workspaces.values():
            if workspace.port != port:
                workspace.port = port
                self.store.save_record(RECORD_KIND, workspace.id, workspace.record())

    async def deregister(self, workspace_id: str) -> Workspace:
        workspace = self.get(workspace_id)
        await self.store.delete_record(RECORD_KIND, workspace_id)
        del self.workspaces[workspace_id]
        workspace.announce({"event": "workspace_deregistered"})
        return workspace
