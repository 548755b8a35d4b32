"""``/sessions/{id}/notebook_run``: arm a notebook run's write-back, and read its state
(``supervisor/notebook_runs.py``). Writing a file is more than running code in the eyes of
an authorizer, so arming also needs ``write`` on ``contents``."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from session_ext.api.base import SupervisorAPIHandler
from session_ext.core.errors import SupervisorError
from session_ext.core.validation import validate

READ, EXECUTE = "read", "execute"


class NotebookRunHandler(SupervisorAPIHandler):
    @property
    def runs(self):
        return self.extensionapp.notebook_runs

    @web.authenticated
    @authorized(READ)
    def get(self, session_id):
        self.write_json(self.runs.get(session_id))

    @web.authenticated
    @authorized(EXECUTE)
    async def put(self, session_id):
        if not self.authorizer.is_authorized(self, self.current_user, "write", "contents"):
            raise SupervisorError(403, "forbidden", "Writing notebooks (contents) is not allowed")
        body = validate("NotebookRunRequest", self.json_body())
        self.write_json(await self.runs.arm(session_id, body))
