"""Execution history: what each execute request ran and produced, clipped to a few KB.

Outputs are collected while a request runs without decoding them on the hot path: the
collector keeps the raw iopub messages of the first and last few outputs, and decodes them
only when the request finishes.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from session_ext.session.outputs import execution_error, output_text
from session_ext.wire.messages import KernelMessage

if TYPE_CHECKING:
    from session_ext.session.queue import QueuedRequest

OUTPUT_TYPES = ("stream", "execute_result", "display_data", "error")
KEEP_MESSAGES = 32  # at each end
CLIP_CHARS = 2048  # at each end of input and output


def clip(text: str, limit: int = CLIP_CHARS) -> tuple[str, bool]:
    """Keep the head and the tail of ``text``; True if something was cut out."""
    if len(text) <= 2 * limit:
        return text, False
    cut = len(text) - 2 * limit
    return f"{text[:limit]}\n[... {cut} characters clipped ...]\n{text[-limit:]}", True


class OutputCollector:
    """The outputs of one running request, kept raw at both ends."""

    __slots__ = ("count", "error", "head", "tail")

    def __init__(self) -> None:
        self.head: list[KernelMessage] = []
        self.tail: deque[KernelMessage] = deque(maxlen=KEEP_MESSAGES)
        self.count = 0
        self.error: dict[str, Any] | None = None

    def add(self, msg: KernelMessage) -> None:
        self.count += 1
        if len(self.head) < KEEP_MESSAGES:
            self.head.append(msg)
        else:
            self.tail.append(msg)
        if msg.msg_type == "error":
            self.error = execution_error(msg.content)

    def text(self) -> tuple[str, bool]:
        skipped = self.count - len(self.head) - len(self.tail)
        parts = [output_text(m.msg_type, m.content) for m in self.head]
        if skipped > 0:
            parts.append(f"[... {skipped} outputs clipped ...]\n")
        parts.extend(output_text(m.msg_type, m.content) for m in self.tail)
        text, clipped = clip("".join(parts))
        return text, clipped or skipped > 0


def history_entry(
    request: QueuedRequest,
    collector: OutputCollector | None,
    status: str,
    finished_at: int,
    reason: str | None = None,
) -> dict:
    code, input_clipped = clip(request.code)
    output, output_clipped = collector.text() if collector else ("", False)
    entry = {
        "msg_id": request.msg_id,
        "input": code,
        "output": output,
        "status": status,
        "source": request.source,
        "timestamp": request.queued_at,
        "queued_at": request.queued_at,
        "started_at": request.started_at,
        "finished_at": finished_at,
        "truncated": input_clipped or output_clipped,
    }
    if request.agent:
        entry["agent"] = request.agent  # the MCP client's name (source "agent")
    if collector and collector.error:
        entry["error"] = collector.error
    if reason is not None:
        entry["reason"] = reason
    return entry
