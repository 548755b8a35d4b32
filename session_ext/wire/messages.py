"""Jupyter messages on the supervisor's hot path.

A kernel message is kept as the raw JSON frames it arrived in from ZeroMQ; the frame a
websocket client receives is spliced from them (header, parent_header, metadata and content
are already JSON), so content is never decoded and re-encoded on the way through. Only the
small header and parent header are parsed, for routing.
"""

from __future__ import annotations

import base64
import hmac
import json
import uuid
from typing import Any

from jupyter_client.session import DELIM, Session

from session_ext.core import validation
from session_ext.core.clock import now_iso
from session_ext.core.errors import bad_request

CLIENT_CHANNELS = ("shell", "control", "stdin")


class InvalidSignature(Exception):
    pass


class KernelMessage:
    """One message from a kernel, as raw JSON frames plus its parsed headers."""

    __slots__ = (
        "_content",
        "_frame",
        "buffers",
        "channel",
        "content_raw",
        "header",
        "header_raw",
        "metadata_raw",
        "parent_header",
        "parent_raw",
    )

    def __init__(self, channel: str, frames: list[bytes]):
        # frames: [header, parent_header, metadata, content, *buffers]
        self.channel = channel
        self.header_raw, self.parent_raw, self.metadata_raw, self.content_raw = frames[:4]
        self.buffers = frames[4:]
        self.header: dict[str, Any] = json.loads(self.header_raw)
        self.parent_header: dict[str, Any] = json.loads(self.parent_raw) if self.parent_raw else {}
        self._content: dict[str, Any] | None = None
        self._frame: bytes | None = None

    @classmethod
    def from_zmq(cls, channel: str, msg_list: list[bytes], session: Session) -> KernelMessage:
        """Split off the routing identities and check the HMAC signature."""
        idx = msg_list.index(DELIM)
        signature, frames = msg_list[idx + 1], msg_list[idx + 2 :]
        if session.auth is not None and not hmac.compare_digest(
            signature, session.sign(frames[:4])
        ):
            raise InvalidSignature(f"Invalid signature on a {channel} message")
        return cls(channel, frames)

    @property
    def msg_type(self) -> str:
        return self.header.get("msg_type", "")

    @property
    def msg_id(self) -> str:
        return self.header.get("msg_id", "")

    @property
    def parent_msg_id(self) -> str | None:
        return self.parent_header.get("msg_id")

    @property
    def content(self) -> dict[str, Any]:
        """The decoded content, for the few message types the supervisor looks inside."""
        if self._content is None:
            self._content = json.loads(self.content_raw)
        return self._content

    @property
    def frame(self) -> bytes:
        """The websocket frame (Kallichore envelope), built once and shared by every client."""
        if self._frame is None:
            buffers = b""
            if self.buffers:
                buffers = b",".join(b'"' + base64.b64encode(b) + b'"' for b in self.buffers)
            self._frame = b"".join(
                (
                    b'{"kind":"jupyter","channel":"',
                    self.channel.encode(),
                    b'","header":',
                    self.header_raw,
                    b',"parent_header":',
                    self.parent_raw or b"{}",
                    b',"metadata":',
                    self.metadata_raw or b"{}",
                    b',"content":',
                    self.content_raw or b"{}",
                    b',"buffers":[',
                    buffers,
                    b"]}",
                )
            )
        return self._frame


def kernel_event(**fields: Any) -> bytes:
    """A supervisor event frame: ``{"kind": "kernel", <name>: <value>}``."""
    return json.dumps({"kind": "kernel", **fields}).encode()


def parse_client_frame(data: str | bytes, session: Session) -> dict[str, Any]:
    """Validate a client's websocket frame as a Jupyter message to send to the kernel.

    Missing header fields are filled in from the supervisor's session; raises SupervisorError
    (400) naming what is wrong.
    """
    msg = validation.loads(data, "frame")  # strict: no NaN or Infinity, bounded nesting
    if not isinstance(msg, dict):
        raise bad_request("The frame must be a JSON object (a Jupyter message)")
    kind = msg.get("kind", "jupyter")
    if kind != "jupyter":
        raise bad_request(f"Unknown message kind {kind!r}; clients send kind 'jupyter'")
    header = msg.get("header")
    if not isinstance(header, dict):
        raise bad_request("Field 'header' must be an object")
    msg_type = header.get("msg_type")
    if not isinstance(msg_type, str) or not msg_type:
        raise bad_request("Field 'header.msg_type' must be a non-empty string")
    msg_id = header.get("msg_id")
    if msg_id is None:
        header["msg_id"] = msg_id = uuid.uuid4().hex
    if not isinstance(msg_id, str) or not msg_id:
        raise bad_request("Field 'header.msg_id' must be a non-empty string")
    channel = msg.get("channel", "shell")
    if channel not in CLIENT_CHANNELS:
        raise bad_request(f"Field 'channel' must be one of {', '.join(CLIENT_CHANNELS)}")
    for name in ("parent_header", "metadata", "content"):
        value = msg.get(name)
        if value is None:
            msg[name] = {}
        elif not isinstance(value, dict):
            raise bad_request(f"Field '{name}' must be an object")
    buffers = msg.get("buffers") or []
    if not isinstance(buffers, list):
        raise bad_request("Field 'buffers' must be a list of base64 strings")
    try:
        msg["buffers"] = [base64.b64decode(b, validate=True) for b in buffers]
    except (ValueError, TypeError):
        raise bad_request("Field 'buffers' must be a list of base64 strings") from None
    header.setdefault("session", session.session)
    header.setdefault("username", session.username)
    header.setdefault("date", now_iso())
    header.setdefault("version", "5.3")
    msg["channel"] = channel
    return msg


def make_message(session: Session, channel: str, msg_type: str, content: dict, **kw: Any) -> dict:
    """A new Jupyter message of the supervisor's own (kernel_info at start, REST execute)."""
    msg = session.msg(msg_type, content=content, **kw)
    msg["header"]["date"] = msg["header"]["date"].isoformat()  # JSON, like a client's
    msg["channel"] = channel
    msg["buffers"] = []
    return msg


def synthetic_reply(session: Session, request: dict, channel: str, content: dict) -> KernelMessage:
    """A message as if from the kernel, in answer to ``request`` (aborted replies and the
    busy/idle around them, as ipykernel sends when it aborts a request)."""
    msg_type = request["header"]["msg_type"]
    reply_type = "status" if channel == "iopub" else msg_type.rsplit("_", 1)[0] + "_reply"
    header = session.msg_header(reply_type)
    frames = [
        session.pack(header),
        session.pack(request["header"]),
        session.pack({"status": content.get("status")} if channel != "iopub" else {}),
        session.pack(content),
    ]
    return KernelMessage(channel, frames)
