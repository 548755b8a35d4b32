"""The errors the API reports (``{code, message, details?}`` with an HTTP status) and
their codes: Kallichore's ``KS-<n>`` where the meaning matches, else a short word."""

from __future__ import annotations

from typing import Any


class SupervisorError(Exception):
    """An error the API reports as ``{code, message, details?}`` with an HTTP status.

    Codes are Kallichore's ``KS-<n>`` where the meaning matches, else a short word.
    """

    def __init__(self, status: int, code: str, message: str, details: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class StartupError(SupervisorError):
    """A kernel failed to start: a 500 whose body also carries the exit code and output."""

    def __init__(self, code: str, message: str, exit_code: int | None, output: str):
        super().__init__(500, code, message)
        self.exit_code = exit_code
        self.output = output

    def to_json(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "output": self.output,
            "error": super().to_json(),
        }


# Kallichore's error codes, by meaning.
SESSION_EXISTS = "KS-0"


SESSION_NOT_FOUND = "KS-1"


SESSION_RUNNING = "KS-2"


SESSION_NOT_RUNNING = "KS-3"


PROCESS_START_FAILED = "KS-5"


ZMQ_CONNECT_TIMEOUT = "KS-7"


EXITED_ABNORMALLY = "KS-8"


INTERRUPT_FAILED = "KS-10"


NO_PROCESS = "KS-12"


NO_CONNECTION_INFO = "KS-18"


KERNEL_PATH_NOT_FOUND = "KS-19"


# Ours, for cases Kallichore has no code for.
BAD_REQUEST = "bad_request"


CONFLICT = "conflict"


FORBIDDEN = "forbidden"


STORAGE_ERROR = "storage_error"


TOO_MANY_SESSIONS = "too_many_sessions"


TIMEOUT = "timeout"


def bad_request(message: str, details: str | None = None) -> SupervisorError:
    return SupervisorError(400, BAD_REQUEST, message, details)


def not_found(session_id: str) -> SupervisorError:
    return SupervisorError(404, SESSION_NOT_FOUND, f"Session {session_id!r} not found")
