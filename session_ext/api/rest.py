"""REST handlers: parse, call the supervisor, serialize. No session logic here."""

from __future__ import annotations

import re

from jupyter_server.auth.decorator import authorized
from tornado import web

from session_ext.api.base import SupervisorAPIHandler
from session_ext.core import validation
from session_ext.core.errors import bad_request
from session_ext.core.requests import ExecuteRequest, parse_connection_info, parse_restart
from session_ext.core.validation import validate
from session_ext.store.records import session_model

READ, EXECUTE = "read", "execute"


class StatusHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(READ)
    def get(self):
        self.write_json({**self.supervisor.status(), "mcp": self.extensionapp.mcp.status()})


class SessionsHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(READ)
    def get(self):
        sessions = [session_model(s) for s in self.supervisor.all_sessions()]
        self.write_json({"total": len(sessions), "sessions": sessions})

    @web.authenticated
    @authorized(EXECUTE)
    async def put(self):
        session = await self.supervisor.create(self.json_body())
        self.write_json({"session_id": session.session_id})

    post = put


class SessionHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(READ)
    def get(self, session_id):
        self.write_json(session_model(self.supervisor.get(session_id)))

    @web.authenticated
    @authorized(EXECUTE)
    async def delete(self, session_id):
        force = self.get_argument("force", "false").lower() in ("1", "true", "yes")
        await self.supervisor.delete(session_id, force=force)
        self.write_json(None)


class StartHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(EXECUTE)
    async def post(self, session_id):
        self.write_json(await self.supervisor.start_session(session_id))


class RestartHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(EXECUTE)
    async def post(self, session_id):
        working_directory, env = parse_restart(self.json_body(default={}))
        await self.supervisor.restart_session(session_id, working_directory, env)
        self.write_json(None)


class InterruptHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(EXECUTE)
    async def post(self, session_id):
        await self.supervisor.get(session_id).interrupt()
        self.write_json(None)


class KillHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(EXECUTE)
    async def post(self, session_id):
        await self.supervisor.get(session_id).kill()
        self.write_json(None)


class AdoptHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(EXECUTE)
    async def put(self, session_id):
        info = parse_connection_info(self.json_body())
        kernel_info = await self.supervisor.get(session_id).adopt(info)
        await self.supervisor.flush()
        self.write_json(kernel_info)


class ConnectionInfoHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(EXECUTE)  # the key lets its holder run code in the kernel
    def get(self, session_id):
        self.write_json(self.supervisor.get(session_id).connection_info())


class ExecuteHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(EXECUTE)
    async def post(self, session_id):
        request = ExecuteRequest.parse(self.json_body())
        self.write_json(await self.supervisor.get(session_id).execute(request))


class HistoryHandler(SupervisorAPIHandler):
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


class CellsHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(READ)
    def get(self, session_id):
        self.write_json(self.supervisor.get(session_id).cells_model())


class QueueHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(READ)
    def get(self, session_id):
        self.write_json(self.supervisor.get(session_id).queue.summary())


class QueuedRequestHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(EXECUTE)
    def delete(self, session_id, msg_id):
        self.supervisor.get(session_id).queue.cancel(msg_id)
        self.write_json(None)


class ShutdownHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(EXECUTE)
    async def post(self):
        await self.supervisor.shutdown_all()
        self.write_json(None)
        self.extensionapp.shutdown_requested()


class ClientHeartbeatHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(READ)
    def post(self):
        body = validate("ClientHeartbeat", self.json_body(default={}))
        self.supervisor.client_heartbeat(body.get("process_id"))
        self.write_json(None)


class ServerConfigurationHandler(SupervisorAPIHandler):
    @web.authenticated
    @authorized(READ)
    def get(self):
        self.write_json(self.supervisor.server_configuration())

    @web.authenticated
    @authorized(EXECUTE)
    def post(self):
        self.supervisor.update_server_configuration(self.json_body())
        self.write_json(None)


class OpenAPIHandler(SupervisorAPIHandler):
    _document: bytes | None = None

    @web.authenticated
    @authorized(READ)
    def get(self):
        if OpenAPIHandler._document is None:
            with open(validation.OPENAPI_PATH, "rb") as f:  # once; a small file in the package
                OpenAPIHandler._document = f.read()
        self.finish(OpenAPIHandler._document, set_content_type="application/yaml")


class NotFoundHandler(SupervisorAPIHandler):
    """Unknown paths under the API prefix get a JSON 404, not the server's HTML page (a 401
    first without credentials, as on every route). Answered after the body is read, so the
    connection stays usable."""

    def not_found(self, *args):
        if not self.authenticated():
            raise web.HTTPError(403)  # answered as 401 (JSONErrorsMixin)
        raise web.HTTPError(404, "No such endpoint: %s", self.request.path)

    get = post = put = delete = patch = head = options = not_found
