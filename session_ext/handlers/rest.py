"""REST handlers: parse, call the supervisor, serialize. No session logic here."""

from __future__ import annotations

import os
import re

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..models import ExecuteRequest, bad_request, parse_restart, require_object
from .base import SupervisorHandler

READ, EXECUTE = "read", "execute"


class StatusHandler(SupervisorHandler, APIHandler):
    @web.authenticated
    @authorized(READ)
    def get(self):
        self.write_json(self.supervisor.status())


class SessionsHandler(SupervisorHandler, APIHandler):
    @web.authenticated
    @authorized(READ)
    def get(self):
        sessions = [s.to_json() for s in self.supervisor.all_sessions()]
        self.write_json({"total": len(sessions), "sessions": sessions})

    @web.authenticated
    @authorized(EXECUTE)
    async def put(self):
        session = await self.supervisor.create(self.json_body())
        self.write_json({"session_id": session.session_id})

    post = put


class SessionHandler(SupervisorHandler, APIHandler):
    @web.authenticated
    @authorized(READ)
    def get(self, session_id):
        self.write_json(self.supervisor.get(session_id).to_json())

    @web.authenticated
    @authorized(EXECUTE)
    async def delete(self, session_id):
        force = self.get_argument("force", "false").lower() in ("1", "true", "yes")
        await self.supervisor.delete(session_id, force=force)
        self.write_json(None)


class StartHandler(SupervisorHandler, APIHandler):
    @web.authenticated
    @authorized(EXECUTE)
    async def post(self, session_id):
        self.write_json(await self.supervisor.start_session(session_id))


class RestartHandler(SupervisorHandler, APIHandler):
    @web.authenticated
    @authorized(EXECUTE)
    async def post(self, session_id):
        working_directory, env = parse_restart(self.json_body(required=False))
        await self.supervisor.restart_session(session_id, working_directory, env)
        self.write_json(None)


class InterruptHandler(SupervisorHandler, APIHandler):
    @web.authenticated
    @authorized(EXECUTE)
    async def post(self, session_id):
        await self.supervisor.get(session_id).interrupt()
        self.write_json(None)


class KillHandler(SupervisorHandler, APIHandler):
    @web.authenticated
    @authorized(EXECUTE)
    async def post(self, session_id):
        await self.supervisor.get(session_id).kill()
        self.write_json(None)


class AdoptHandler(SupervisorHandler, APIHandler):
    CONNECTION_FIELDS = {
        "control_port": int, "shell_port": int, "stdin_port": int, "hb_port": int,
        "iopub_port": int, "signature_scheme": str, "key": str, "transport": str, "ip": str,
    }

    @web.authenticated
    @authorized(EXECUTE)
    async def put(self, session_id):
        session = self.supervisor.get(session_id)
        info = require_object(self.json_body())
        for name, kind in self.CONNECTION_FIELDS.items():
            value = info.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise bad_request(f"Field '{name}' must be a {kind.__name__}")
        if info["transport"] not in ("tcp", "ipc"):
            raise bad_request("Field 'transport' must be 'tcp' or 'ipc'")
        if not info["signature_scheme"].startswith("hmac-"):
            raise bad_request("Field 'signature_scheme' must be an hmac-* scheme")
        kernel_info = await session.adopt(info)
        await self.supervisor.flush()
        self.write_json(kernel_info)


class ConnectionInfoHandler(SupervisorHandler, APIHandler):
    @web.authenticated
    @authorized(EXECUTE)  # the key lets its holder run code in the kernel
    def get(self, session_id):
        self.write_json(self.supervisor.get(session_id).connection_info())


class ExecuteHandler(SupervisorHandler, APIHandler):
    @web.authenticated
    @authorized(EXECUTE)
    async def post(self, session_id):
        session = self.supervisor.get(session_id)
        request = ExecuteRequest.parse(self.json_body())
        self.write_json(await session.execute(request))


class HistoryHandler(SupervisorHandler, APIHandler):
    @web.authenticated
    @authorized(READ)
    def get(self, session_id):
        session = self.supervisor.get(session_id)
        limit = self.get_argument("limit", None)
        if limit is not None:
            if not re.fullmatch(r"[1-9][0-9]{0,8}", limit):
                raise bad_request("Parameter 'limit' must be a positive integer")
            limit = int(limit)
        self.write_json(session.get_history(limit))


class QueueHandler(SupervisorHandler, APIHandler):
    @web.authenticated
    @authorized(READ)
    def get(self, session_id):
        self.write_json(self.supervisor.get(session_id).queue.summary())


class QueuedRequestHandler(SupervisorHandler, APIHandler):
    @web.authenticated
    @authorized(EXECUTE)
    def delete(self, session_id, msg_id):
        self.supervisor.get(session_id).queue.cancel(msg_id)
        self.write_json(None)


class ShutdownHandler(SupervisorHandler, APIHandler):
    @web.authenticated
    @authorized(EXECUTE)
    async def post(self):
        await self.supervisor.shutdown_all()
        self.write_json(None)
        self.extensionapp.shutdown_requested()


class ClientHeartbeatHandler(SupervisorHandler, APIHandler):
    @web.authenticated
    @authorized(READ)
    def post(self):
        body = require_object(self.json_body(required=False) or {})
        process_id = body.get("process_id")
        if process_id is not None and (not isinstance(process_id, int) or isinstance(process_id, bool)):
            raise bad_request("Field 'process_id' must be an integer")
        self.supervisor.client_heartbeat(process_id)
        self.write_json(None)


class ServerConfigurationHandler(SupervisorHandler, APIHandler):
    @web.authenticated
    @authorized(READ)
    def get(self):
        self.write_json(self.supervisor.server_configuration())

    @web.authenticated
    @authorized(EXECUTE)
    def post(self):
        self.supervisor.update_server_configuration(self.json_body())
        self.write_json(None)


OPENAPI_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "openapi.yaml")


class OpenAPIHandler(SupervisorHandler, APIHandler):
    _document: bytes | None = None

    @web.authenticated
    @authorized(READ)
    def get(self):
        if OpenAPIHandler._document is None:
            with open(OPENAPI_PATH, "rb") as f:  # once; a small file in the package
                OpenAPIHandler._document = f.read()
        self.set_header("Content-Type", "application/yaml")
        self.finish(OpenAPIHandler._document)


class NotFoundHandler(SupervisorHandler, APIHandler):
    """Unknown paths under the API prefix get a JSON 404, not the server's HTML page."""

    def prepare(self):
        raise web.HTTPError(404, "No such endpoint: %s", self.request.path)
