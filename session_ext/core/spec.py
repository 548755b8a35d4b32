"""A session's spec: what a client asked for when it created the session (a validated
NewSession), and how its env actions apply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
