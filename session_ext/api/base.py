"""What every supervisor handler shares: auth resource, JSON errors, bounded JSON bodies."""

from __future__ import annotations

import json
from http.client import responses
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from session_ext.core import internals
from session_ext.core.errors import SupervisorError, bad_request
from session_ext.core.validation import loads

AUTH_RESOURCE = "kernels"
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
REQUIRED = object()  # json_body's default: a body must be given

# An error body's code for a plain HTTP status (our handlers raise SupervisorError instead).
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    500: "internal_error",
}


class JSONErrorsMixin:
    """Every error is ``{code, message, details?}`` JSON: never an HTML page or a traceback.
    A 405 says in ``Allow`` which methods the route has."""

    # Our flag (tornado has none it documents): whether the request got past our ``prepare``.
    # A handler that streams its body sets it False until then (SupervisorAPIHandler).
    body_accepted = True

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if status_code == 403 and not self.authenticated():
            # jupyter_server refuses an unknown user with 403; a client must be able to tell
            # "no or wrong credentials" (401: Positron then starts a new supervisor) from
            # "you may not" (403, the authorizer's answer to a known user).
            status_code = 401
            self.set_status(401)
            self.set_header("WWW-Authenticate", 'Bearer realm="session_ext"')
            exc = web.HTTPError(401, "Missing or invalid credentials (token)")
        if isinstance(exc, SupervisorError):
            body = exc.to_json()
        else:
            message = responses.get(status_code, "Error")
            if isinstance(exc, web.HTTPError) and exc.log_message:
                message = exc.log_message % exc.args if exc.args else exc.log_message
            elif status_code >= 500:
                message = "Internal server error (see the server log)"
            body = {"code": HTTP_CODES.get(status_code, str(status_code)), "message": message}
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        if not self.body_accepted:
            # Refused in prepare, before the (streamed) body was read: tornado then drops
            # the connection after this answer; say so, or a keep-alive client (node's agent)
            # sends its next request into a closed socket ("socket hang up").
            self.set_header("Connection", "close")
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def authenticated(self) -> bool:
        """Whether the identity provider knew the requester (set by jupyter_server's prepare)."""
        return internals.user_identified(self)

    def allowed_methods(self) -> list[str]:
        """The methods this handler class implements (tornado's defaults answer 405)."""
        return [
            m
            for m in METHODS
            if m in self.SUPPORTED_METHODS
            and getattr(type(self), m.lower()) is not getattr(web.RequestHandler, m.lower())
        ]

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, SupervisorError):
            # An expected refusal: answer it without logging a traceback.
            if not internals.response_finished(self):
                self.send_error(e.status, exc_info=(type(e), e, None))
            return
        super()._handle_request_exception(e)


class SupervisorHandler(JSONErrorsMixin, ExtensionHandlerMixin):
    auth_resource = AUTH_RESOURCE

    @property
    def supervisor(self):
        return self.extensionapp.supervisor


@web.stream_request_body
class SupervisorAPIHandler(SupervisorHandler, APIHandler):
    """A REST handler. Its body is read here, at most ``max_body_bytes`` of it (413 past
    it: at once when Content-Length says so, else without keeping the rest)."""

    _body: bytearray
    _too_large = False
    body_accepted = False  # until prepare has passed (see JSONErrorsMixin.write_error)

    @property
    def max_body_bytes(self) -> int:
        return self.extensionapp.max_body_bytes

    async def prepare(self):
        await super().prepare()
        self._body = bytearray()
        length = self.request.headers.get("Content-Length", "0")
        if length.isdigit() and int(length) > self.max_body_bytes:
            raise self._body_too_large()
        self.body_accepted = True

    def data_received(self, chunk: bytes) -> None:
        if len(self._body) + len(chunk) > self.max_body_bytes:
            self._too_large = True
        if not self._too_large:
            self._body += chunk

    def _body_too_large(self) -> SupervisorError:
        return SupervisorError(
            413,
            "too_large",
            f"The request body is larger than {self.max_body_bytes} bytes",
            details="SessionExtApp.max_body_bytes sets the limit",
        )

    def json_body(self, default: Any = REQUIRED) -> Any:
        """The request body as strict JSON (see validation.loads); 400 naming the problem
        when it is not; ``default`` when there is none (400 without a default)."""
        if self._too_large:
            raise self._body_too_large()
        if not self._body.strip():
            if default is REQUIRED:
                raise bad_request("A JSON request body is required")
            return default
        return loads(bytes(self._body))

    def write_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value))
