"""Request validation, error values and enums of the supervisor API.

Everything here is plain Python (no tornado), so the session logic and the tests can use it
directly. Field names follow the Kallichore API.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

SESSION_MODES = ("console", "notebook", "background")
INTERRUPT_MODES = ("signal", "message")
STARTUP_ENVIRONMENTS = ("none", "shell", "command", "script")
ENV_ACTIONS = ("replace", "append", "prepend")
RUNNING_STATUSES = ("starting", "idle", "busy", "offline")

SESSION_ID_PATTERN = re.compile(r"[A-Za-z0-9._~-]{1,256}")


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


# --- field validation -------------------------------------------------------------------


def _type_name(value: Any) -> str:
    return type(value).__name__ if value is not None else "null"


def require_object(body: Any, what: str = "request body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request(f"The {what} must be a JSON object, not {_type_name(body)}")
    return body


def get_str(body: dict, name: str, default: str | None = None, *, required: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"Field '{name}' is required")
        return default
    if not isinstance(value, str):
        raise bad_request(f"Field '{name}' must be a string, not {_type_name(value)}")
    return value


def get_enum(body: dict, name: str, allowed: tuple[str, ...], default: str | None) -> Any:
    value = get_str(body, name, default)
    if value is not None and value not in allowed:
        raise bad_request(f"Field '{name}' must be one of {', '.join(allowed)}; got {value!r}")
    return value


def get_number(body: dict, name: str, default: float | None, *, minimum: float = 0) -> Any:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_request(f"Field '{name}' must be a number, not {_type_name(value)}")
    if value < minimum:
        raise bad_request(f"Field '{name}' must be >= {minimum}; got {value}")
    return value


def get_bool(body: dict, name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"Field '{name}' must be a boolean, not {_type_name(value)}")
    return value


def get_str_list(body: dict, name: str, default: list[str] | None) -> Any:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"Field '{name}' must be a list of strings")
    return list(value)


def get_env_actions(body: dict, name: str = "env") -> list[dict[str, str]] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise bad_request(f"Field '{name}' must be a list of {{action, name, value}} objects")
    actions = []
    for i, item in enumerate(value):
        where = f"{name}[{i}]"
        item = require_object(item, f"field '{where}'")
        action = item.get("action")
        if action not in ENV_ACTIONS:
            raise bad_request(
                f"Field '{where}.action' must be one of {', '.join(ENV_ACTIONS)}; got {action!r}"
            )
        name = _str_field(item, "name", where)
        if not name:
            raise bad_request(f"Field '{where}.name' must not be empty")
        actions.append({"action": action, "name": name, "value": _str_field(item, "value", where)})
    return actions


def _str_field(item: dict, key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise bad_request(f"Field '{where}.{key}' must be a string, not {_type_name(value)}")
    return value


def validate_session_id(session_id: str) -> str:
    if not SESSION_ID_PATTERN.fullmatch(session_id):
        raise bad_request(
            "Field 'session_id' must be 1-256 characters of A-Z a-z 0-9 . _ ~ -",
            details=f"got {session_id!r}",
        )
    return session_id


def apply_env_actions(base: dict[str, str], actions: list[dict[str, str]]) -> dict[str, str]:
    """Apply Kallichore env actions in order: replace sets, append/prepend concatenate
    with no separator (as Kallichore does)."""
    env = dict(base)
    for act in actions:
        name, value = act["name"], act["value"]
        if act["action"] == "replace":
            env[name] = value
        elif act["action"] == "append":
            env[name] = env.get(name, "") + value
        else:
            env[name] = value + env.get(name, "")
    return env


@dataclass
class SessionSpec:
    """What a client asked for when it created the session (a validated NewSession)."""

    session_id: str
    display_name: str
    language: str
    username: str
    input_prompt: str
    continuation_prompt: str
    argv: list[str]
    session_mode: str
    working_directory: str
    env: list[dict[str, str]]
    interrupt_mode: str
    startup_environment: str
    startup_environment_arg: str | None = None
    notebook_uri: str | None = None
    connection_timeout: float = 30
    protocol_version: str = "5.3"
    kernel_name: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionSpec:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def parse_new_session(body: Any, defaults: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Validate a NewSession body; return its fields (defaults not yet applied for the ones
    that come from a kernelspec) and the kernel_name, if any.

    ``defaults`` gives username, working_directory.
    """
    body = require_object(body)
    session_id = get_str(body, "session_id")
    session_id = validate_session_id(session_id) if session_id is not None else uuid.uuid4().hex
    kernel_name = get_str(body, "kernel_name")
    argv = get_str_list(body, "argv", None)
    metadata = body.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise bad_request("Field 'metadata' must be an object")
    fields = {
        "session_id": session_id,
        "display_name": get_str(body, "display_name"),
        "language": get_str(body, "language"),
        "username": get_str(body, "username", defaults["username"]),
        "input_prompt": get_str(body, "input_prompt", ">>> "),
        "continuation_prompt": get_str(body, "continuation_prompt", "... "),
        "argv": argv,
        "session_mode": get_enum(body, "session_mode", SESSION_MODES, "console"),
        "working_directory": get_str(body, "working_directory", defaults["working_directory"]),
        "env": get_env_actions(body) or [],
        "interrupt_mode": get_enum(body, "interrupt_mode", INTERRUPT_MODES, None),
        "startup_environment": get_enum(body, "startup_environment", STARTUP_ENVIRONMENTS, "none"),
        "startup_environment_arg": get_str(body, "startup_environment_arg"),
        "notebook_uri": get_str(body, "notebook_uri"),
        "connection_timeout": get_number(body, "connection_timeout", 30, minimum=0.1),
        "protocol_version": get_str(body, "protocol_version", "5.3"),
        "kernel_name": kernel_name,
        "tags": get_str_list(body, "tags", []),
        "metadata": metadata,
    }
    if fields["startup_environment"] in ("command", "script") and not fields[
        "startup_environment_arg"
    ]:
        raise bad_request(
            "Field 'startup_environment_arg' is required when startup_environment is "
            f"{fields['startup_environment']!r}"
        )
    if not os.path.isdir(fields["working_directory"]):
        raise bad_request(
            f"Field 'working_directory' is not a directory: {fields['working_directory']!r}"
        )
    return fields, kernel_name


def parse_restart(body: Any) -> tuple[str | None, list[dict[str, str]] | None]:
    body = require_object(body if body is not None else {})
    working_directory = get_str(body, "working_directory")
    if working_directory is not None and not os.path.isdir(working_directory):
        raise bad_request(f"Field 'working_directory' is not a directory: {working_directory!r}")
    return working_directory, get_env_actions(body)


@dataclass
class ExecuteRequest:
    code: str
    silent: bool = False
    store_history: bool = True
    stop_on_error: bool = True
    timeout_seconds: float | None = None

    @classmethod
    def parse(cls, body: Any) -> ExecuteRequest:
        body = require_object(body)
        return cls(
            code=get_str(body, "code", required=True),
            silent=get_bool(body, "silent", False),
            store_history=get_bool(body, "store_history", True),
            stop_on_error=get_bool(body, "stop_on_error", True),
            timeout_seconds=get_number(body, "timeout_seconds", None, minimum=0),
        )


@dataclass
class SupervisorConfig:
    """The supervisor's settings (from SessionExtApp's traits; a few change at run time
    through /server_configuration)."""

    runtime_dir: str
    server_root: str
    username: str
    keep_kernels_on_shutdown: bool = False
    buffer_max_messages: int = 10_000
    buffer_max_bytes: int = 64 * 1024 * 1024
    heartbeat_interval: float = 2.0
    heartbeat_timeout: float = 5.0
    shutdown_wait: float = 5.0
    history_size: int = 1000
    max_sessions: int = 0
    allow_argv: str = "any"
    resource_sample_interval_ms: int = 1000
    idle_shutdown_hours: int = -1
    cull_idle_timeout: float = 0
    cull_busy_timeout: float = 0
    cull_connected: bool = False
    secrets: tuple[str, ...] = ()  # values never passed into a kernel's environment
    log_level: str = "info"
