"""Websocket frames (RFC 6455) for the paths that do not go through tornado's websocket
handler: the batched writes of the channels websocket and the per-session unix sockets."""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Awaitable, Callable

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

ReadExactly = Callable[[int], Awaitable[bytes]]


class FrameError(Exception):
    """The peer broke the protocol (or sent a message past the size limit)."""


def frame(opcode: int, payload: bytes) -> bytes:
    """A final, unmasked, uncompressed frame (what a server sends)."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, n)
    elif n <= 0xFFFF:
        header = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return header + payload


def text_frame(payload: bytes) -> bytes:
    return frame(TEXT, payload)


def close_frame(code: int = 1000, reason: str = "") -> bytes:
    return frame(CLOSE, struct.pack("!H", code) + reason.encode()[:120])


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


async def read_frame(read: ReadExactly, max_size: int) -> tuple[bool, int, bytes]:
    """One frame: (fin, opcode, payload), unmasked. Masked or not, both are accepted (a
    client speaking the protocol raw on a unix socket may not mask)."""
    b1, b2 = await read(2)
    fin, opcode, masked, n = bool(b1 & 0x80), b1 & 0x0F, bool(b2 & 0x80), b2 & 0x7F
    if b1 & 0x70:
        raise FrameError("reserved bits set (no extension was negotiated)")
    if n == 126:
        (n,) = struct.unpack("!H", await read(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await read(8))
    if n > max_size:
        raise FrameError(f"frame of {n} bytes is larger than {max_size}")
    if opcode >= 0x8 and (n > 125 or not fin):
        raise FrameError("bad control frame")
    mask = await read(4) if masked else b""
    payload = await read(n) if n else b""
    if masked:
        payload = (
            bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if n < 64
            else _unmask(payload, mask)
        )
    return fin, opcode, payload


def _unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte mask, a machine word at a time."""
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


async def read_message(read: ReadExactly, max_size: int) -> tuple[int, bytes]:
    """The next message (continuations joined) or control frame: (opcode, payload)."""
    opcode, parts, size = None, [], 0
    while True:
        fin, op, payload = await read_frame(read, max_size)
        if op >= 0x8:
            return op, payload  # control frames may come between the fragments
        if (op == CONTINUATION) != (opcode is not None):
            raise FrameError(
                "unexpected continuation frame" if opcode is None else "unfinished message"
            )
        opcode = op if opcode is None else opcode
        size += len(payload)
        if size > max_size:
            raise FrameError(f"message larger than {max_size} bytes")
        parts.append(payload)
        if fin:
            return opcode, b"".join(parts)
