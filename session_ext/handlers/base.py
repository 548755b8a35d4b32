"""What every supervisor handler shares: auth resource, JSON errors, JSON bodies."""

from __future__ import annotations

import json
from http.client import responses
from typing import Any

from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from ..models import SupervisorError, bad_request

AUTH_RESOURCE = "kernels"

# An error body's code for a plain HTTP status (our handlers raise SupervisorError instead).
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 500: "internal_error"}


class JSONErrorsMixin:
    """Every error is ``{code, message, details?}`` JSON: never an HTML page or a traceback."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, SupervisorError):
            body = exc.to_json()
        else:
            message = responses.get(status_code, "Error")
            if isinstance(exc, web.HTTPError) and exc.log_message:
                message = exc.log_message % exc.args if exc.args else exc.log_message
            elif status_code >= 500:
                message = "Internal server error (see the server log)"
            body = {"code": HTTP_CODES.get(status_code, str(status_code)), "message": message}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, SupervisorError):
            # An expected refusal: answer it without logging a traceback.
            if not self._finished:
                self.send_error(e.status, exc_info=(type(e), e, None))
            return
        super()._handle_request_exception(e)


class SupervisorHandler(JSONErrorsMixin, ExtensionHandlerMixin):
    auth_resource = AUTH_RESOURCE

    @property
    def supervisor(self):
        return self.extensionapp.supervisor

    def json_body(self, required: bool = True) -> Any:
        """The request body as JSON; 400 naming the problem when it is not."""
        raw = self.request.body
        if not raw or not raw.strip():
            if required:
                raise bad_request("A JSON request body is required")
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            raise bad_request("The request body is not valid JSON", details=str(e)) from None

    def write_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value))
