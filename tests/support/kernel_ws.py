"""jupyter_server's own kernel websocket (/api/kernels/{id}/channels), as JupyterLab speaks
it (the v1 protocol, or the legacy JSON one), and /api/sessions as JupyterLab calls it."""

import asyncio
import json
import uuid

import tornado.httpclient
import tornado.websocket
from jupyter_server.services.kernels.connection.base import (
    deserialize_msg_from_ws_v1,
    serialize_msg_to_ws_v1,
)

from .helpers import WAIT, execute_request


async def open_notebook(jp_fetch, path="work/analysis.ipynb", kernel="python3"):
    body = {"path": path, "name": "analysis.ipynb", "type": "notebook", "kernel": {"name": kernel}}
    r = await jp_fetch("api", "sessions", method="POST", body=json.dumps(body))
    return json.loads(r.body)


class StockSocket:
    """A client of jupyter_server's own kernel websocket (legacy JSON or v1 protocol)."""

    def __init__(self, conn, v1: bool):
        self.conn, self.v1, self.received = conn, v1, []

    @classmethod
    async def open(cls, api, kernel_id, v1=False):
        """v1: True needs the v1 protocol, False speaks the legacy one, "offer" does what
        JupyterLab does (asks for v1, speaks what the server picked)."""
        url = f"ws://127.0.0.1:{api.port}{api.base_url}api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
        request = tornado.httpclient.HTTPRequest(url, headers=api.auth_header)
        protocols = ["v1.kernel.websocket.jupyter.org"] if v1 else None
        conn = await tornado.websocket.websocket_connect(request, subprotocols=protocols)
        selected = conn.selected_subprotocol == "v1.kernel.websocket.jupyter.org"
        if v1 is True:
            assert selected
        return cls(conn, selected)

    def execute(self, code, msg_id=None, metadata=None):
        msg = execute_request(code, msg_id or uuid.uuid4().hex)
        msg["metadata"] = metadata or {}
        if self.v1:
            msg.pop("kind")
            channel = msg.pop("channel")
            msg.pop("buffers")

            def pack(part):
                return json.dumps(part).encode()

            self.conn.write_message(serialize_msg_to_ws_v1(msg, channel, pack), binary=True)
        else:
            msg.pop("kind")
            self.conn.write_message(json.dumps(msg))
        return msg["header"]["msg_id"]

    async def until(self, predicate, timeout=WAIT):
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for msg in self.received:
                if predicate(msg):
                    return msg
            left = deadline - asyncio.get_running_loop().time()
            raw = await asyncio.wait_for(self.conn.read_message(), max(left, 0.01))
            assert raw is not None, "socket closed"
            if self.v1:
                channel, parts = deserialize_msg_from_ws_v1(raw)
                msg = {
                    "channel": channel,
                    "header": json.loads(parts[0]),
                    "parent_header": json.loads(parts[1]),
                    "content": json.loads(parts[3]),
                }
            else:
                msg = json.loads(raw)
            self.received.append(msg)

    async def reply_to(self, msg_id):
        return await self.until(
            lambda m: m["channel"] == "shell" and m["parent_header"].get("msg_id") == msg_id
        )

    async def idle_of(self, msg_id):
        return await self.until(
            lambda m: (
                m["channel"] == "iopub"
                and m["header"]["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle"
                and m["parent_header"].get("msg_id") == msg_id
            )
        )


async def queue_of(api, session_id):
    return await api.ok("GET", f"sessions/{session_id}/queue")
