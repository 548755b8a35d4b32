"""The benchmark's clients: one per path to the kernel, with the same small interface.

Every client sends the same execute_request dict and turns what it receives into the same
tuple ``(channel, msg_type, parent_msg_id, state)`` (``state`` is ``execution_state`` for
status messages and ``content.status`` for replies, else None). That is all the benchmark
needs, and each client decodes only the JSON it needs to get it:

* ZeroMQ: the header and parent header frames (plus content for status/replies). The
  client trusts the local kernel and does not check the HMAC signature.
* Websockets: the frame is one JSON document, so it is decoded whole.

Time spent decoding is counted (``parse_ns``) so the report can show how much of the
client's time it is.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any, ClassVar

import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.session import DELIM

Parsed = tuple  # (channel, msg_type, parent_msg_id, state)

SESSION_ID = uuid.uuid4().hex


def execute_request(msg_id: str, code: str) -> dict[str, Any]:
    """One execute_request, built the same way for every path."""
    return {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "session": SESSION_ID,
            "username": "bench",
            "date": datetime.now(timezone.utc).isoformat(),
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "buffers": [],
    }


class Client:
    name = "?"

    def __init__(self) -> None:
        self.parse_ns = 0  # time spent decoding JSON
        self.parsed = 0  # messages decoded
        # Only for the batching check: also decode stream content and count its lines.
        self.count_lines = False
        self.stream_lines = 0

    async def connect(self) -> None: ...

    async def send(self, msg_id: str, code: str) -> None: ...

    async def recv_batch(self) -> list[Parsed]:
        """At least one message, as parsed tuples (supervisor events are dropped)."""
        raise NotImplementedError

    async def close(self) -> None: ...


# --- direct ZeroMQ: the floor ----------------------------------------------------------


class ZmqClient(Client):
    """jupyter_client's AsyncKernelClient connects (and checks the kernel is ready); the
    benchmark then reads its shell and iopub sockets directly: woken by the event loop on
    either socket's fd, it drains both without blocking. So neither jupyter_client's full
    deserialization (signature check, date parsing of every header) nor an asyncio future
    per message is what gets measured."""

    name = "zmq"

    def __init__(self, connection_info: dict[str, Any]):
        super().__init__()
        self.info = connection_info
        self.kc: AsyncKernelClient | None = None
        self._readers: list[int] = []
        self._waiter: asyncio.Future | None = None

    async def connect(self) -> None:
        kc = self.kc = AsyncKernelClient()
        kc.load_connection_info(self.info)
        kc.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
        await kc.wait_for_ready(timeout=60)  # kernel_info reply + iopub subscribed
        # Plain (blocking-API) views of the same sockets, used only with NOBLOCK.
        self._socks = [
            ("shell", zmq.Socket.shadow(kc.shell_channel.socket.underlying)),
            ("iopub", zmq.Socket.shadow(kc.iopub_channel.socket.underlying)),
        ]
        self._drain()  # what wait_for_ready left behind
        self.parsed = self.parse_ns = 0
        loop = asyncio.get_running_loop()
        for _, sock in self._socks:
            fd = sock.FD
            loop.add_reader(fd, self._wake)
            self._readers.append(fd)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def send(self, msg_id: str, code: str) -> None:
        self.kc.shell_channel.send(execute_request(msg_id, code))

    def _drain(self) -> list[Parsed]:
        out: list[Parsed] = []
        loads = json.loads
        clock = time.perf_counter_ns
        for channel, sock in self._socks:
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                t0 = clock()
                i = frames.index(DELIM)
                msg_type = loads(frames[i + 2])["msg_type"]
                parent = loads(frames[i + 3]).get("msg_id")
                state = None
                if msg_type == "status":
                    state = loads(frames[i + 5]).get("execution_state")
                elif msg_type.endswith("_reply"):
                    state = loads(frames[i + 5]).get("status")
                elif self.count_lines and msg_type == "stream":
                    self.stream_lines += loads(frames[i + 5])["text"].count("\n")
                self.parse_ns += clock() - t0
                self.parsed += 1
                out.append((channel, msg_type, parent, state))
        return out

    async def recv_batch(self) -> list[Parsed]:
        loop = asyncio.get_running_loop()
        while True:
            # Drain first: a ZeroMQ fd only signals changes, and sending on the shell
            # socket can consume the signal of a message that is already waiting.
            out = self._drain()
            if out:
                return out
            self._waiter = loop.create_future()
            await self._waiter
            self._waiter = None

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for fd in self._readers:
            loop.remove_reader(fd)
        self._readers = []
        if self.kc is not None:
            self.kc.stop_channels()
            self.kc = None


# --- websockets ------------------------------------------------------------------------


class WsTransport:
    """The websocket library: ``websockets`` (default) or tornado's client."""

    async def open(self, url: str, headers: dict[str, str]) -> None: ...

    async def send_text(self, text: str) -> None: ...

    async def recv(self) -> bytes | str: ...

    async def close(self) -> None: ...


class WebsocketsTransport(WsTransport):
    async def open(self, url: str, headers: dict[str, str]) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(
            url,
            additional_headers=headers,
            compression=None,  # neither server negotiates it; say so explicitly
            max_size=None,
            max_queue=4096,  # frames buffered before reading pauses (default 16)
            ping_interval=None,
            open_timeout=60,
        )

    async def send_text(self, text: str) -> None:
        await self.ws.send(text)

    async def recv(self) -> bytes:
        return await self.ws.recv(decode=False)  # the UTF-8 bytes; json.loads takes them

    async def close(self) -> None:
        await self.ws.close()


class TornadoTransport(WsTransport):
    async def open(self, url: str, headers: dict[str, str]) -> None:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        self.ws = await websocket_connect(
            HTTPRequest(url, headers=headers, request_timeout=60),
            max_message_size=1 << 30,
            ping_interval=None,
        )

    async def send_text(self, text: str) -> None:
        await self.ws.write_message(text)

    async def recv(self) -> str:
        msg = await self.ws.read_message()
        if msg is None:
            raise ConnectionError("websocket closed")
        return msg

    async def close(self) -> None:
        self.ws.close()


TRANSPORTS = {"websockets": WebsocketsTransport, "tornado": TornadoTransport}


class WsClient(Client):
    """A websocket whose frames are whole Jupyter messages as JSON text."""

    envelope: ClassVar[dict[str, Any]] = {}  # extra top-level fields of a frame
    metadata: ClassVar[dict[str, Any]] = {}  # of every execute_request

    def __init__(self, url: str, token: str, transport: str = "websockets"):
        super().__init__()
        self.url = url
        self.token = token
        self.ws = TRANSPORTS[transport]()

    async def connect(self) -> None:
        await self.ws.open(self.url, {"Authorization": f"token {self.token}"})

    async def send(self, msg_id: str, code: str) -> None:
        msg = execute_request(msg_id, code)
        msg["channel"] = "shell"
        msg["metadata"] = self.metadata
        msg.update(self.envelope)
        await self.ws.send_text(json.dumps(msg))

    async def recv_batch(self) -> list[Parsed]:
        clock = time.perf_counter_ns
        while True:
            frame = await self.ws.recv()
            t0 = clock()
            msg = json.loads(frame)
            header = msg.get("header")
            if header is None:  # a supervisor event ({"kind": "kernel", ...})
                self.parse_ns += clock() - t0
                self.parsed += 1
                if "error" in msg:
                    raise RuntimeError(f"{self.name}: the server refused a frame: {msg['error']}")
                continue
            msg_type = header["msg_type"]
            state = None
            if msg_type == "status":
                state = msg["content"].get("execution_state")
            elif msg_type.endswith("_reply"):
                state = msg["content"].get("status")
            elif self.count_lines and msg_type == "stream":
                self.stream_lines += msg["content"]["text"].count("\n")
            parsed = (msg["channel"], msg_type, msg["parent_header"].get("msg_id"), state)
            self.parse_ns += clock() - t0
            self.parsed += 1
            return [parsed]

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.ws.close(), 5)
        except Exception:
            pass


class StockWsClient(WsClient):
    """jupyter_server's own kernel websocket, legacy JSON protocol (no subprotocol): what
    most clients (and JupyterLab without the v1 subprotocol) use."""

    name = "stock_ws"

    def __init__(self, ws_base: str, kernel_id: str, token: str, transport: str = "websockets"):
        url = f"{ws_base}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
        super().__init__(url, token, transport)


class OursWsClient(WsClient):
    """session_ext's channels websocket (Kallichore envelope)."""

    name = "ours_ws"
    envelope: ClassVar[dict[str, Any]] = {"kind": "jupyter"}

    def __init__(self, ws_base: str, session_id: str, token: str, transport: str = "websockets"):
        super().__init__(f"{ws_base}/supervisor/sessions/{session_id}/channels", token, transport)


class OursNotebookWsClient(OursWsClient):
    """Our channels websocket on a notebook session, each request from one notebook cell (as
    JupyterLab sends it: ``metadata.cellId``), so the supervisor keeps the cell's outputs."""

    name = "ours_ws_nb"
    metadata: ClassVar[dict[str, Any]] = {"cellId": "bench-cell"}
