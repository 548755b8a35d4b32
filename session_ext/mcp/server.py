"""The MCP server for agents: the official SDK's low-level server over streamable HTTP, on its
own port on 127.0.0.1 (as Kallichore does), run by uvicorn inside the server's event loop.

One URL per workspace, ``http://127.0.0.1:<port>/mcp/<workspace_id>``, each opened only by
that workspace's bearer token (401 otherwise; the server's token opens none). The listener
starts with the first workspace and stops (its port released) when the last one goes. Every
MCP session is tied by the SDK to the credential that opened it, so one workspace's session
cannot be used with another workspace's token.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import socket
import urllib.parse
from typing import TYPE_CHECKING, Any

import mcp_types as types
import psutil
import uvicorn
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import Route

from session_ext._version import __version__
from session_ext.core import internals
from session_ext.mcp.protocol import BRIDGE_HEADERS, HOST, SESSION_HEADER
from session_ext.mcp.tools import Tools, tool_list
from session_ext.mcp.workspaces import JUPYTER_WORKSPACE, Workspace, WorkspaceRegistry

if TYPE_CHECKING:
    from session_ext.store.database import SessionStore
    from session_ext.supervisor.registry import Supervisor

log = logging.getLogger(__name__)

PRUNE_SECONDS = 2.0
INSTRUCTIONS = (
    "Runs code in the user's Jupyter kernel sessions (this workspace's only). list_sessions "
    "first; execute_code waits in the session's queue behind the user's own cells and "
    "answers 'running' with an execution_id past timeout_seconds (poll get_execution). "
    "The user sees everything you run, marked as an agent's."
)


class McpService:
    def __init__(
        self,
        supervisor: Supervisor,
        store: SessionStore,
        *,
        port: int = 0,
        max_output_chars: int = 20000,
        max_image_bytes: int = 4 * 1024 * 1024,
        secrets: tuple[str, ...] = (),
    ):
        self.supervisor = supervisor
        self.registry = WorkspaceRegistry(store, secrets)
        self.tools = Tools(supervisor, max_output_chars, max_image_bytes)
        self.default_port = port
        self.request_count = 0
        self.port = 0
        self.server = Server(
            "session_ext",
            version=__version__,
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )
        self._uvicorn: uvicorn.Server | None = None
        self._serving: asyncio.Task | None = None
        self._manager: StreamableHTTPSessionManager | None = None
        self._pruning: asyncio.Task | None = None
        self._lock = asyncio.Lock()  # one listener start/stop at a time

    # --- workspaces --------------------------------------------------------------------

    async def restore(self, jupyter_workspace: bool) -> None:
        """At server start: the stored workspaces (and JupyterLab's), listening if any."""
        await self.registry.restore()
        if jupyter_workspace:
            self.registry.ensure(JUPYTER_WORKSPACE, "Jupyter server notebooks and consoles")
        if len(self.registry):
            await self.ensure_listening(next((w.port for w in self.registry if w.port), None))

    async def register(self, body: Any) -> dict[str, Any]:
        workspace = await self.registry.register(body)
        preferred = body.get("preferred_port") if isinstance(body, dict) else None
        await self.ensure_listening(preferred)
        return self.workspace_json(workspace)

    async def deregister(self, workspace_id: str) -> None:
        workspace = await self.registry.deregister(workspace_id)
        for execution in list(workspace.executions.values()):
            execution.finished()  # stop following them (they run on in their sessions)
        if not len(self.registry):
            await self.stop()

    def workspace_json(self, workspace: Workspace) -> dict[str, Any]:
        return {
            "workspace_id": workspace.id,
            "token": workspace.token,
            "port": self.port,
            "url": self.url(workspace),
        }

    def url(self, workspace: Workspace) -> str:
        return f"http://{HOST}:{self.port}/mcp/{urllib.parse.quote(workspace.id, safe='')}"

    def status(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "port": self.port if self.active else 0,
            "request_count": self.request_count,
            "workspaces": [w.status() for w in self.registry],
        }

    @property
    def active(self) -> bool:
        return self._serving is not None and not self._serving.done()

    # --- the listener ------------------------------------------------------------------

    async def ensure_listening(self, preferred_port: Any) -> None:
        async with self._lock:
            if self.active:
                self.registry.listening_on(self.port)  # (a workspace registered just now)
                return
            port = preferred_port if isinstance(preferred_port, int) else self.default_port
            sock = bind(port)
            self.request_count = 0  # (Positron's McpStatus: since the listener started)
            self._manager = manager = StreamableHTTPSessionManager(
                app=self.server,
                security_settings=TransportSecuritySettings(
                    enable_dns_rebinding_protection=True,
                    allowed_hosts=[f"{HOST}:*", "localhost:*"],
                    allowed_origins=[f"http://{HOST}:*", "http://localhost:*"],
                ),
            )
            app = Starlette(
                routes=[Route("/mcp/{workspace_id}", endpoint=Endpoint(self))],
                lifespan=lambda _app: manager.run(),
            )
            config = uvicorn.Config(
                app,
                log_config=None,
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=1,
                ws="none",
            )
            self._uvicorn = server = internals.uvicorn_server(config)
            self._serving = asyncio.ensure_future(server.serve(sockets=[sock]))
            self.port = sock.getsockname()[1]
            for _ in range(200):  # up to 10 s
                if server.started or self._serving.done():
                    break
                await asyncio.sleep(0.05)
            if not server.started:
                await self._stop_serving()
                sock.close()
                raise RuntimeError("The MCP listener did not start")
            self._pruning = asyncio.ensure_future(self._prune_loop())
            self.registry.listening_on(self.port)
            log.info("MCP server listening on http://%s:%s/mcp/", HOST, self.port)

    async def stop(self) -> None:
        async with self._lock:
            await self._stop_serving()

    async def _stop_serving(self) -> None:
        if self._pruning is not None:
            self._pruning.cancel()
            self._pruning = None
        if self._serving is not None:
            self._uvicorn.should_exit = True
            try:
                await asyncio.wait_for(self._serving, 10)
            except (asyncio.TimeoutError, Exception):
                log.exception("Stopping the MCP listener")
            self._serving = None
        for workspace in self.registry:
            for mcp_session in list(workspace.clients):
                workspace.remove_client(mcp_session)
        self.port = 0

    async def _prune_loop(self) -> None:
        """Agents that went away without saying so: their MCP session ended (idle timeout)
        or their bridge process is gone."""
        while True:
            await asyncio.sleep(PRUNE_SECONDS)
            for workspace in self.registry:
                for mcp_session, client in list(workspace.clients.items()):
                    pid = client.info.get("pid")
                    gone = not internals.mcp_session_open(self._manager, mcp_session)
                    if pid is not None and not gone:
                        gone = not psutil.pid_exists(pid)
                    if gone:
                        workspace.remove_client(mcp_session)

    # --- the MCP handlers --------------------------------------------------------------

    def _workspace(self, ctx: Any) -> Workspace:
        workspace_id = ctx.request.scope.get("session_ext.workspace")
        workspace = self.registry.workspaces.get(workspace_id)
        if workspace is None:
            raise ValueError("This MCP workspace was deregistered")
        self._seen(ctx, workspace)
        return workspace

    def _seen(self, ctx: Any, workspace: Workspace) -> None:
        """Note the agent of this MCP session (announced on the workspace's channel)."""
        headers = ctx.request.headers
        mcp_session = headers.get(SESSION_HEADER)
        if not mcp_session or mcp_session in workspace.clients:
            return
        client_info = ctx.session.client_params.client_info if ctx.session.client_params else None
        info: dict[str, Any] = {
            "name": client_info.name if client_info else None,
            "version": client_info.version if client_info else None,
        }
        for field, header in BRIDGE_HEADERS.items():
            info[field] = headers.get(header)
        if info["pid"] is not None:
            info["pid"] = int(info["pid"]) if info["pid"].isdigit() else None
        workspace.add_client(mcp_session, info)

    async def _list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        self._workspace(ctx)
        return types.ListToolsResult(tools=tool_list())

    async def _call_tool(
        self, ctx: Any, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        workspace = self._workspace(ctx)
        self.request_count += 1
        params_info = ctx.session.client_params
        agent = params_info.client_info.name if params_info else None
        arguments = params.arguments or {}
        workspace.announce(
            {
                "event": "tool_called",
                "tool": params.name,
                "agent": agent,
                "session_id": arguments.get("session_id"),
            }
        )
        return await self.tools.call(workspace, agent, params.name, arguments)


class Endpoint:
    """The ASGI endpoint of ``/mcp/{workspace_id}``: the workspace's token, then the SDK."""

    def __init__(self, service: McpService):
        self.service = service

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        service = self.service
        workspace_id = scope["path_params"]["workspace_id"]
        token = bearer(scope)
        workspace = service.registry.authenticate(workspace_id, token)
        if workspace is None:
            await refuse(
                send, 401, "unauthorized", "Missing or invalid token for this MCP workspace"
            )
            return
        scope["user"] = AuthenticatedUser(
            AccessToken(token=token, client_id=workspace.id, scopes=[])
        )
        scope["session_ext.workspace"] = workspace.id
        await service._manager.handle_request(scope, receive, send)
        if scope["method"] == "DELETE":
            headers = dict(scope["headers"])
            mcp_session = headers.get(SESSION_HEADER.encode(), b"").decode()
            workspace.remove_client(mcp_session)


def bearer(scope: dict) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


async def refuse(send: Any, status: int, code: str, message: str) -> None:
    body = json.dumps({"code": code, "message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="session_ext MCP"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1: ``port`` if it is free, else any free port."""
    for candidate in [port, 0] if port else [0]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, candidate))
        except OSError as e:
            sock.close()
            if e.errno != errno.EADDRINUSE and candidate == 0:
                raise
            continue
        sock.listen(128)
        sock.set_inheritable(False)
        os.set_blocking(sock.fileno(), False)
        return sock
    raise OSError("No free port on 127.0.0.1")


# The SDK's and uvicorn's INFO lines (a line per MCP session, uvicorn's banner) would fill
# JupyterLab's console; our own lines say what matters.
for _name in ("mcp", "uvicorn.error"):
    logging.getLogger(_name).setLevel(logging.WARNING)
