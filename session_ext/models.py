"""Error values, settings and the request models of the supervisor API.

Request bodies are checked against openapi.yaml's schemas (validation.py); what a schema
cannot say (a directory exists, a field needed because of another) is checked here.
Everything here is plain Python (no tornado), so the session logic and the tests can use it
directly. Field names follow the Kallichore API.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import zmq

from . import validation  # (it uses bad_request of this module at call time)



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


MAX_METADATA_BYTES = 65536  # a NewSession's metadata, as JSON


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
    workspace_id: str | None = None  # the MCP workspace it belongs to (session_ext/mcp)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionSpec:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def parse_new_session(body: Any, defaults: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Validate a NewSession body (against openapi.yaml); return its fields (defaults not yet
    applied for the ones that come from a kernelspec) and the kernel_name, if any.

    ``defaults`` gives username, working_directory.
    """
    given = validation.given("NewSession", body)
    metadata = given.get("metadata", {})
    if len(json.dumps(metadata)) > MAX_METADATA_BYTES:
        raise bad_request(f"Field 'metadata' must be at most {MAX_METADATA_BYTES} bytes as JSON")
    fields = {
        "session_id": given.get("session_id") or uuid.uuid4().hex,
        "display_name": given.get("display_name"),
        "language": given.get("language"),
        "username": given.get("username", defaults["username"]),
        "input_prompt": given.get("input_prompt", ">>> "),
        "continuation_prompt": given.get("continuation_prompt", "... "),
        "argv": given.get("argv"),
        "session_mode": given.get("session_mode", "console"),
        "working_directory": given.get("working_directory", defaults["working_directory"]),
        "env": given.get("env", []),
        "interrupt_mode": given.get("interrupt_mode"),
        "startup_environment": given.get("startup_environment", "none"),
        "startup_environment_arg": given.get("startup_environment_arg"),
        "notebook_uri": given.get("notebook_uri"),
        "connection_timeout": given.get("connection_timeout", 30),
        "protocol_version": given.get("protocol_version", "5.3"),
        "kernel_name": given.get("kernel_name"),
        "tags": given.get("tags", []),
        "metadata": metadata,
        "workspace_id": given.get("workspace_id"),
    }
    if fields["startup_environment"] in ("command", "script") and not fields[
        "startup_environment_arg"
    ]:
        raise bad_request(
            "Field 'startup_environment_arg' is required when startup_environment is "
            f"{fields['startup_environment']!r}"
        )
    _check_directory(fields["working_directory"])
    return fields, fields["kernel_name"]


def parse_restart(body: Any) -> tuple[str | None, list[dict[str, str]] | None]:
    """An optional RestartSession body (absent is ``{}``; ``null`` is refused)."""
    body = validation.validate("RestartSession", body)
    working_directory = body.get("working_directory")
    if working_directory is not None:
        _check_directory(working_directory)
    return working_directory, body.get("env")


def parse_connection_info(body: Any) -> dict[str, Any]:
    """A ConnectionInfo to adopt, whose addresses ZeroMQ can parse: checked before the
    session changes state (a bad ``ip`` would otherwise fail the connect half-way)."""
    info = validation.validate("ConnectionInfo", body)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.linger = 0
    try:
        for name in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"):
            sep = ":" if info["transport"] == "tcp" else "-"  # as jupyter_client builds them
            url = f"{info['transport']}://{info['ip']}{sep}{info[name]}"
            try:
                sock.connect(url)
            except zmq.ZMQError as e:
                raise bad_request(
                    f"Fields 'ip' and '{name}' do not make an address ZeroMQ can connect to",
                    details=f"{url}: {e}",
                ) from None
    finally:
        sock.close()
    return info


def _check_directory(path: str) -> None:
    if not os.path.isdir(path):
        raise bad_request(f"Field 'working_directory' is not a directory: {path!r}")


@dataclass
class ExecuteRequest:
    code: str
    silent: bool = False
    store_history: bool = True
    stop_on_error: bool = True
    timeout_seconds: float | None = None

    @classmethod
    def parse(cls, body: Any) -> ExecuteRequest:
        body = validation.given("ExecuteRequest", body)
        return cls(
            code=body["code"],
            silent=body.get("silent", False),
            store_history=body.get("store_history", True),
            stop_on_error=body.get("stop_on_error", True),
            timeout_seconds=body.get("timeout_seconds"),
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
    max_cell_output_bytes: int = 2 * 1024 * 1024
    max_notebook_output_bytes: int = 32 * 1024 * 1024
    max_sessions: int = 0
    allow_argv: str = "any"
    resource_sample_interval_ms: int = 1000
    idle_shutdown_hours: int = -1
    cull_idle_timeout: float = 0
    cull_busy_timeout: float = 0
    cull_connected: bool = False
    secrets: tuple[str, ...] = ()  # values never passed into a kernel's environment
    log_level: str = "info"
    gateway_url: str | None = None  # the server's kernels are this kernel gateway's
