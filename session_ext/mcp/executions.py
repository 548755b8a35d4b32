"""An agent's execution: what its request produced, bounded as it arrives (head and tail of the
text kept, images as images up to a byte budget), readable at any time (``get_execution``)
while the code goes on running past the tool call's timeout."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from typing import Any

from session_ext.session.channels import InternalClient
from session_ext.session.outputs import error_text, execution_error, plain_text
from session_ext.wire.messages import KernelMessage

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # terminal colours in tracebacks


def plain(text: str) -> str:
    return ANSI.sub("", text)


class BoundedText:
    """At most ``limit`` characters of a growing text: its first and last halves, and how
    much was left out between them. O(1) amortized per chunk."""

    def __init__(self, limit: int):
        self.half = max(limit // 2, 1)
        self.head: list[str] = []
        self.head_len = 0
        self.tail: deque[str] = deque()
        self.tail_len = 0
        self.omitted = 0

    def add(self, text: str) -> None:
        if not text:
            return
        if self.head_len < self.half:
            take = text[: self.half - self.head_len]
            self.head.append(take)
            self.head_len += len(take)
            text = text[len(take) :]
            if not text:
                return
        self.tail.append(text)
        self.tail_len += len(text)
        while self.tail_len > self.half:
            extra = self.tail_len - self.half
            first = self.tail[0]
            if len(first) <= extra:
                self.tail.popleft()
                self.tail_len -= len(first)
                self.omitted += len(first)
            else:
                self.tail[0] = first[extra:]
                self.tail_len -= extra
                self.omitted += extra

    def __str__(self) -> str:
        head, tail = "".join(self.head), "".join(self.tail)
        if self.omitted:
            return f"{head}\n[... {self.omitted} characters omitted ...]\n{tail}"
        return head + tail


class AgentExecution(InternalClient):
    """Follows one execute_request of an agent (the session's queue routes its iopub
    messages and its reply here)."""

    def __init__(self, session_id: str, agent: str | None, max_chars: int, max_image_bytes: int):
        self.session_id = session_id
        self.agent = agent  # read by QueuedRequest: recorded in the history
        self.execution_id = ""
        self.text = BoundedText(max_chars)
        self.max_image_bytes = max_image_bytes
        self.images: list[tuple[str, str]] = []  # (mime type, base64)
        self.image_bytes = 0
        self.images_omitted = 0
        self.error: dict[str, Any] | None = None
        self.reply: dict[str, Any] | None = None
        self.idle = False
        self.done = asyncio.get_running_loop().create_future()

    def finished(self) -> None:
        """Set by execute.submit: stop following the request."""

    @property
    def status(self) -> str:
        """running, then the reply's status: ok, error or aborted."""
        if self.reply is None:
            return "running"
        return self.reply.get("status") or "ok"

    def deliver(self, msg: KernelMessage) -> None:
        if msg.channel == "iopub":
            msg_type = msg.msg_type
            content = msg.content
            if msg_type == "status":
                self.idle = content.get("execution_state") == "idle"
            elif msg_type == "stream":
                self.text.add(content.get("text", ""))
            elif msg_type in ("execute_result", "display_data", "update_display_data"):
                self._display(content.get("data") or {})
            elif msg_type == "error":
                self.error = error = execution_error(content)
                error["traceback"] = [plain(line) for line in error["traceback"]]
                self.text.add(error_text(error))
        elif msg.msg_type == "execute_reply":
            self.reply = msg.content
        if self.reply is not None and self.idle and not self.done.done():
            self.done.set_result(None)
            self.finished()

    def _display(self, data: dict[str, Any]) -> None:
        for mime in IMAGE_TYPES:
            value = data.get(mime)
            if isinstance(value, str):
                size = len(value)
                if self.image_bytes + size <= self.max_image_bytes:
                    self.images.append((mime, value.replace("\n", "")))
                    self.image_bytes += size
                else:
                    self.images_omitted += 1
                    self.text.add(
                        f"[{mime} image of {size} bytes omitted: over the image budget]\n"
                    )
                return
        text = plain_text(data)
        if text is not None:
            self.text.add(text)
        elif data:
            self.text.add(f"<{', '.join(data)}>\n")

    def release_images(self) -> None:
        """An older execution keeps its text only; its images are said to be gone."""
        if self.images:
            self.text.add(f"[{len(self.images)} image(s) no longer kept]\n")
            self.images_omitted += len(self.images)
            self.images = []
            self.image_bytes = 0

    def result(self) -> dict[str, Any]:
        """The facts of the execution so far (a tool's structured content)."""
        reply = self.reply or {}
        result: dict[str, Any] = {
            "session_id": self.session_id,
            "execution_id": self.execution_id,
            "status": self.status,
            "execution_count": reply.get("execution_count"),
            "output": str(self.text),
            "truncated": bool(self.text.omitted or self.images_omitted),
            "images": len(self.images),
        }
        if self.error is not None:
            result["error"] = {**self.error, "traceback": self.error["traceback"][-50:]}
        return result
