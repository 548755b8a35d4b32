"""MCP workspaces over the supervisor API (Positron's client calls these): register,
look up, deregister, and the workspace's channel websocket. The MCP server itself is
session_ext/mcp/server.py, on its own port."""

from __future__ import annotations

import json

from jupyter_server.auth.decorator import authorized, ws_authenticated
from tornado import web

from session_ext.api.base import SupervisorAPIHandler
from session_ext.api.rest import EXECUTE
from session_ext.api.websocket import SupervisorWebsocket


class McpWorkspacesHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(EXECUTE)
    async def post(self):
        self.write_json(await self.extensionapp.mcp.register(self.json_body()))


class McpWorkspaceHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(EXECUTE)  # the answer holds the workspace's token
    def get(self, workspace_id):
        mcp = self.extensionapp.mcp
        self.write_json(mcp.workspace_json(mcp.registry.get(workspace_id)))

    @web.authenticated
    @authorized(EXECUTE)
    async def delete(self, workspace_id):
        await self.extensionapp.mcp.deregister(workspace_id)
        self.write_json(None)


class McpChannelHandler(SupervisorWebsocket):
    """``/mcp/workspaces/{id}/channel``: the workspace is ``connected`` while one is open;
    agent activity is announced on it as JSON frames ``{event, workspace_id, timestamp,
    ...}``. Frames from the window are accepted and ignored."""

    action = "read"

    @ws_authenticated
    async def get(self, workspace_id):
        await self.authorize()
        self.workspace = self.extensionapp.mcp.registry.get(workspace_id)  # 404 before upgrade
        await super().get(workspace_id)

    def open(self, workspace_id):
        super().open()
        self.workspace.channels.add(self.send_frame)
        self.send_frame(json.dumps({"event": "connected", "workspace_id": self.workspace.id}))

    def on_message(self, message):
        """The window's frames (its command catalog, foreground session): not used yet."""

    def on_close(self):
        super().on_close()
        self.workspace.channels.discard(self.send_frame)
