"""The startup handshake (jupyter_server's "nudge"): kernel_info_request until its reply and
an iopub message of it have arrived — proof that the kernel answers and that our iopub
socket is connected, so no output of the first request is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from session_ext.wire.messages import KernelMessage

TRY_SECONDS = 1.0  # a new request per try: the first may be sent before the kernel listens


class KernelInfoHandshake:
    def __init__(self) -> None:
        self.ids: set[str] = set()  # the requests sent
        self.reply: dict[str, Any] | None = None
        self.iopub_seen = False
        self.running = False

    @property
    def done(self) -> bool:
        return self.reply is not None and self.iopub_seen

    def claims(self, msg: KernelMessage) -> bool:
        """Whether ``msg`` is the handshake's own (not the clients' business): all of them
        while it runs; afterwards late replies, but not late iopub messages (output like any
        other)."""
        if msg.parent_msg_id not in self.ids:
            return False
        if self.running:
            if msg.channel == "iopub":
                self.iopub_seen = True
            elif msg.msg_type == "kernel_info_reply":
                self.reply = msg.content
            return True
        return msg.channel != "iopub"

    async def run(self, request: Callable[[], str], give_up: Callable[[], Awaitable[bool]]) -> bool:
        """Send a request (``request()`` sends one and returns its msg_id) per try until
        done; ``give_up()`` is asked every 100 ms (it may raise). False if it gave up."""
        self.running = True
        try:
            while not self.done:
                self.ids.add(request())
                for _ in range(int(TRY_SECONDS * 10)):
                    if self.done:
                        return True
                    if await give_up():
                        return False
                    await asyncio.sleep(0.1)
            return True
        finally:
            self.running = False
