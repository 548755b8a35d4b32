"""Notebooks on the client's side: cell ids (the server keeps a notebook's outputs per cell
id), the code cells to queue, and the server's cells put back into a notebook."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import nbformat

from session_ext.client.models import CellExecution


def read(path: str | Path) -> Any:
    return nbformat.read(os.fspath(path), as_version=4)


def ensure_cell_ids(nb: Any) -> bool:
    """Give every cell an id (nbformat 4.5, as JupyterLab does when it saves); whether any
    was missing."""
    changed = nb.nbformat_minor < 5
    nb.nbformat_minor = max(nb.nbformat_minor, 5)
    for cell in nb.cells:
        if not cell.get("id"):
            cell["id"] = uuid.uuid4().hex[:8]
            changed = True
    return changed


def code_cells(nb: Any) -> list[Any]:
    """The cells to run: code cells with some code, in order."""
    return [cell for cell in nb.cells if cell.cell_type == "code" and cell.source.strip()]


def clear_outputs(nb: Any) -> None:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None


def apply_cells(nb: Any, cells: list[CellExecution]) -> tuple[int, int]:
    """Put the server's record of each cell (its latest execution) into the cell with that
    id whose source is what ran; (cells filled, cells left alone because edited)."""
    by_id = {c.cell_id: c for c in cells}
    filled = edited = 0
    for cell in nb.cells:
        ran = by_id.get(cell.get("id"))
        if ran is None or cell.cell_type != "code":
            continue
        if cell.source != ran.code:
            edited += 1
            continue
        finished = ran.status in ("ok", "error")
        cell.outputs = (
            [nbformat.from_dict(o) for o in ran.outputs] if finished or ran.outputs else []
        )
        cell.execution_count = ran.execution_count if finished else None
        filled += 1
    return filled, edited


def write(nb: Any, path: str | Path) -> None:
    """Atomically: a temporary file beside it, renamed into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".session-ext-", suffix=".ipynb", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
