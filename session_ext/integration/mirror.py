"""A session of jupyter_server's /api/sessions (a notebook or console in JupyterLab), as the
spec of the ActiveSession that mirrors it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from session_ext.core.config import SupervisorConfig
from session_ext.core.spec import SessionSpec

MODES = {"notebook": "notebook", "console": "console"}  # anything else: background


def os_path(config: SupervisorConfig, api_path: str) -> str:
    return os.path.join(config.server_root, *api_path.split("/"))


def notebook_uri(config: SupervisorConfig, model: dict[str, Any]) -> str | None:
    """The notebook's file:// URI (None for consoles and other sessions)."""
    if model.get("type") != "notebook":
        return None
    return Path(os_path(config, model.get("path") or "")).as_uri()


def mirrored_spec(config: SupervisorConfig, model: dict[str, Any], kernel_spec: Any) -> SessionSpec:
    path = model.get("path") or ""
    return SessionSpec(
        session_id=model["id"],
        display_name=kernel_spec.display_name,  # the document's path is shown beside it
        language=kernel_spec.language,
        username=config.username,
        input_prompt=">>> ",
        continuation_prompt="... ",
        argv=list(kernel_spec.argv),
        session_mode=MODES.get(model.get("type"), "background"),
        working_directory=os.path.dirname(os_path(config, path)),
        env=[],
        interrupt_mode=kernel_spec.interrupt_mode,
        startup_environment="none",
        notebook_uri=notebook_uri(config, model),
        kernel_name=(model.get("kernel") or {}).get("name"),
        metadata={"path": path, "source": "jupyter_server"},
    )
