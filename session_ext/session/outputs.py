"""Kernel output (an iopub message's content) in the shapes its views use, built in one place:
nbformat's (a notebook's cells, cells.py), Positron's ``ExecuteOutput`` (REST execute,
execute.py), plain text (the history, history.py; an agent's execution, session_ext/mcp), and
the error of an execution (all of them)."""

from __future__ import annotations

import json
from typing import Any


def execution_error(content: dict[str, Any]) -> dict[str, Any]:
    """An error message's (or an error reply's) content as Positron's ``ExecutionError``."""
    return {
        "name": content.get("ename") or "",
        "message": content.get("evalue") or "",
        "traceback": list(content.get("traceback") or []),
    }


def error_text(error: dict[str, Any]) -> str:
    """An ``execution_error`` as text: its traceback, else its name and message."""
    return "\n".join(error["traceback"] or [f"{error['name']}: {error['message']}"]) + "\n"


def plain_text(data: dict[str, Any]) -> str | None:
    """A MIME bundle's text/plain, ending with a newline; None without one."""
    text = data.get("text/plain")
    if not isinstance(text, str):
        return None
    return text if text.endswith("\n") else text + "\n"


def output_text(msg_type: str, content: dict[str, Any]) -> str:
    """An output as text; one without text/plain as its MIME types (``<image/png>``)."""
    if msg_type == "stream":
        return content.get("text", "")
    if msg_type == "error":
        return error_text(execution_error(content))
    data = content.get("data") or {}
    text = plain_text(data)
    return text if text is not None else f"<{', '.join(data) or 'output'}>\n"


def nbformat_output(msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    """An output message (stream, error, display_data, execute_result) as an nbformat
    output."""
    if msg_type == "stream":
        return {
            "output_type": "stream",
            "name": content.get("name", "stdout"),
            "text": content.get("text", ""),
        }
    if msg_type == "error":
        return {
            "output_type": "error",
            "ename": content.get("ename", ""),
            "evalue": content.get("evalue", ""),
            "traceback": list(content.get("traceback") or []),
        }
    output = {
        "output_type": msg_type,
        "data": content.get("data") or {},
        "metadata": content.get("metadata") or {},
    }
    if msg_type == "execute_result":
        output["execution_count"] = content.get("execution_count")
    return output


def mime_strings(bundle: Any) -> dict[str, str]:
    """A MIME bundle with every value a string (JSON values as JSON text): the shape of
    ExecuteReply.data and ExecuteOutput.data in Positron's client."""
    if not isinstance(bundle, dict):
        return {}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in bundle.items()}


def positron_error(content: dict[str, Any]) -> dict[str, Any]:
    """An error (message or reply) as the ``error_*`` fields of Positron's ExecuteReply and
    ExecuteOutput."""
    error = execution_error(content)
    return {
        "error_name": error["name"],
        "error_message": error["message"],
        "error_traceback": error["traceback"],
    }


def positron_output(msg_type: str, content: dict[str, Any]) -> dict[str, Any] | None:
    """One iopub output as Positron's ``ExecuteOutput`` (``type``, not ``output_type``); None
    for what is not one (an execute_result is the reply's ``data``)."""
    if msg_type == "stream":
        return {
            "type": "stream",
            "stream_name": content.get("name"),
            "text": content.get("text", ""),
        }
    if msg_type in ("display_data", "update_display_data"):
        return {
            "type": "display_data",
            "data": mime_strings(content.get("data")),
            "metadata": content.get("metadata") or {},
        }
    if msg_type == "error":
        return {"type": "error", **positron_error(content)}
    return None
