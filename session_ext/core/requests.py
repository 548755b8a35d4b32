"""The request models of the supervisor API, parsed from bodies already checked against
openapi.yaml (validation.py); what a schema cannot say (a directory exists, a field needed
because of another) is checked here. Field names follow the Kallichore API."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import zmq

from session_ext.core import validation
from session_ext.core.errors import bad_request
from session_ext.core.spec import MAX_METADATA_BYTES


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
    if (
        fields["startup_environment"] in ("command", "script")
        and not fields["startup_environment_arg"]
    ):
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
