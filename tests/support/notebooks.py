"""Notebooks for the tests: made with nbformat, read back."""

from __future__ import annotations

from pathlib import Path

import nbformat


def make_notebook(path: Path, *sources: str, markdown: str | None = "# A notebook") -> Path:
    """A python3 notebook with these code cells (and a markdown cell first)."""
    cells = [nbformat.v4.new_markdown_cell(markdown)] if markdown else []
    cells += [nbformat.v4.new_code_cell(source) for source in sources]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def stream(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o["output_type"] == "stream")


def open_in_lab(lab, name: str) -> dict:
    """A notebook of the lab's root opened as JupyterLab opens one (POST /api/sessions)."""
    code, model = lab.call(
        "POST",
        "/api/sessions",
        {"path": name, "type": "notebook", "name": "", "kernel": {"name": "python3"}},
    )
    assert code == 201, model
    return model
