"""What the client raises: the server's ``{code, message, details?}`` carried as they came,
and the few failures that happen before any server answers."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Any failure of the client; ``str()`` is one line saying what failed."""


class ServerNotFound(ClientError):
    """No running server was found (discovery), or none answers at the given address."""


class ApiError(ClientError):
    """The server answered with an error: its HTTP status and its JSON body's fields."""

    def __init__(self, status: int, code: str, message: str, details: Any = None):
        super().__init__(f"{message} ({status} {code})")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    @classmethod
    def from_response(cls, status: int, body: Any, fallback: str) -> ApiError:
        if isinstance(body, dict) and "code" in body:
            return cls(status, str(body["code"]), str(body.get("message", "")), body.get("details"))
        return cls(status, str(status), fallback)


class Unauthorized(ApiError):
    """401: no or a wrong token."""


class NotFound(ApiError):
    """404: no such session (or route)."""


class ChannelError(ClientError):
    """The session's websocket refused a frame (an ``error`` event: ``{code, message}``), or
    closed while a request waited."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message


def api_error(status: int, body: Any, fallback: str) -> ApiError:
    error = ApiError.from_response(status, body, fallback)
    kind = {401: Unauthorized, 404: NotFound}.get(status)
    if kind is not None:
        error.__class__ = kind
    return error
