"""Outputs in a terminal: streams as they come (stdout to stdout, stderr to stderr), text
results and displays as text, images saved to files whose paths are printed, tracebacks on
stderr; and the tables of ``ls``, ``queue`` and ``history``."""

from __future__ import annotations

import base64
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from session_ext.client.cli.common import out
from session_ext.client.models import HistoryEntry, QueueSummary, SessionInfo

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/svg+xml": "svg"}


class Renderer:
    """Writes one request's outputs to the terminal as they arrive."""

    def __init__(self, images_dir: str | None = None):
        self.images_dir = Path(images_dir) if images_dir else None
        self.images: list[Path] = []
        self._at_line_start = {"stdout": True, "stderr": True}

    def __call__(self, output: dict[str, Any]) -> None:
        kind = output["output_type"]
        if kind == "stream":
            name = output.get("name", "stdout")
            stream = sys.stderr if name == "stderr" else sys.stdout
            stream.write(output["text"])
            stream.flush()
            if output["text"]:
                self._at_line_start[name] = output["text"].endswith("\n")
        elif kind in ("display_data", "execute_result", "update_display_data"):
            self._bundle(output["data"], output.get("execution_count"))
        elif kind == "error":
            self._newline()
            text = "\n".join(output.get("traceback") or [output["ename"]]) + "\n"
            sys.stderr.write(text if sys.stderr.isatty() else ANSI.sub("", text))
            sys.stderr.flush()

    def _newline(self) -> None:
        for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
            if not self._at_line_start[name]:
                stream.write("\n")
                stream.flush()
                self._at_line_start[name] = True

    def _bundle(self, data: dict[str, Any], count: int | None) -> None:
        self._newline()
        for mime, ext in IMAGE_TYPES.items():
            if mime in data:
                path = self._save(data[mime], mime, ext)
                out.print(f"[dim]\\[{mime} saved to[/] {path}[dim]][/]")
                return
        text = data.get("text/plain")
        if text is None:
            kinds = ", ".join(sorted(data)) or "nothing"
            out.print(f"[dim]\\[output of type {kinds}: not shown in a terminal][/]")
            return
        prefix = f"Out[{count}]: " if count is not None else ""
        sys.stdout.write(f"{prefix}{text}\n")
        sys.stdout.flush()

    def _save(self, value: Any, mime: str, ext: str) -> Path:
        if self.images_dir is None:
            self.images_dir = Path(tempfile.mkdtemp(prefix="session-ext-images-"))
        self.images_dir.mkdir(parents=True, exist_ok=True)
        path = self.images_dir / f"output-{int(time.time() * 1000)}-{len(self.images) + 1}.{ext}"
        if mime == "image/svg+xml":
            path.write_text(value if isinstance(value, str) else "".join(value))
        else:
            path.write_bytes(base64.b64decode(value if isinstance(value, str) else "".join(value)))
        self.images.append(path.resolve())
        return path.resolve()


def size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


STATUS_STYLE = {
    "idle": "green",
    "busy": "yellow",
    "starting": "cyan",
    "exited": "dim",
    "offline": "red",
}


def sessions_table(sessions: list[SessionInfo]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("SESSION", "NAME", "MODE", "STATUS", "QUEUE", "MEMORY", "NOTEBOOK / DIRECTORY"):
        table.add_column(column, no_wrap=column in ("SESSION", "STATUS", "QUEUE", "MEMORY"))
    for s in sessions:
        style = STATUS_STYLE.get(s.status, "")
        table.add_row(
            escape(s.session_id),
            escape(s.display_name),
            s.session_mode,
            f"[{style}]{s.status}[/]" if style else s.status,
            str(s.queue_length),
            size(s.memory_bytes),
            escape(s.notebook_path or s.working_directory),
        )
    return table


def ms_time(ms: int | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def first_line(code: str, width: int = 60) -> str:
    line = code.strip().splitlines()[0] if code.strip() else ""
    more = "…" if len(line) > width or len(code.strip().splitlines()) > 1 else ""
    return line[:width] + more


def queue_table(queue: QueueSummary) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("#", "MSG_ID", "STATE", "SOURCE", "QUEUED", "CODE"):
        table.add_column(column, no_wrap=column != "CODE")
    rows = ([("running", queue.active)] if queue.active else []) + [
        ("waiting", r) for r in queue.pending
    ]
    for i, (state, r) in enumerate(rows):
        who = escape(r.agent or r.source or "")
        table.add_row(
            str(i), r.msg_id, state, who, ms_time(r.queued_at), escape(first_line(r.code))
        )
    return table


HISTORY_STYLE = {"ok": "green", "error": "red", "aborted": "yellow"}


def history_table(entries: list[HistoryEntry]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("FINISHED", "STATUS", "SOURCE", "CODE", "OUTPUT"):
        table.add_column(column, no_wrap=column in ("FINISHED", "STATUS", "SOURCE"))
    for e in entries:
        style = HISTORY_STYLE.get(e.status, "")
        output = (e.error or {}).get("name") or first_line(e.output, 40)
        table.add_row(
            ms_time(e.finished_at),
            f"[{style}]{e.status}[/]" if style else e.status,
            escape(e.agent or e.source),
            escape(first_line(e.input)),
            escape(output),
        )
    return table
