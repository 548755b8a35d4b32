"""A server with session_ext whose kernels run on a kernel gateway (`--gateway-url`, how
JupyterHub + Enterprise Gateway labs run): session_ext stays out of the way and the lab runs
cells, with a stock `jupyter server` as the gateway and with `jupyter session-ext`.

Two real servers, driven through jupyter_server's own GatewayClient on the lab side."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from ..support.helpers import WAIT
from ..support.kernel_ws import StockSocket
from ..support.lab import GATEWAYS, LabServer, gateway_args, running_gateway


@pytest.fixture(params=sorted(GATEWAYS))
def gateway(request, tmp_path):
    with running_gateway(request.param, tmp_path / "gateway") as server:
        yield server


@pytest.fixture
def lab(gateway, tmp_path):
    """`jupyter server` with session_ext (enabled as an install enables it) on the gateway."""
    server = LabServer(
        tmp_path / "lab",
        app="server",
        args=gateway_args(gateway),
    )
    try:
        yield server.start()
    finally:
        server.stop()  # before the gateway: its kernels are shut down through it


def ws_client(server: LabServer) -> SimpleNamespace:
    return SimpleNamespace(
        port=server.port, base_url="/", auth_header={"Authorization": f"token {server.token}"}
    )


async def run(ws: StockSocket, code: str) -> tuple[dict, str]:
    msg_id = ws.execute(code)
    reply = await ws.reply_to(msg_id)
    await ws.idle_of(msg_id)
    text = "".join(
        m["content"]["text"]
        for m in ws.received
        if m["channel"] == "iopub"
        and m["header"]["msg_type"] == "stream"
        and m["parent_header"].get("msg_id") == msg_id
    )
    return reply["content"], text


@pytest.mark.parametrize("v1", ["offer", False], ids=["as-jupyterlab", "legacy"])
async def test_a_lab_on_a_gateway_runs_cells(lab, gateway, v1):
    specs = lab.ok("GET", "/api/kernelspecs")
    assert "python3" in specs["kernelspecs"]
    assert lab.ok("GET", "/supervisor/status")["gateway"] == {"url": gateway.base_url}

    code, model = lab.call(
        "POST",
        "/api/sessions",
        {
            "path": "work/a.ipynb",
            "name": "a.ipynb",
            "type": "notebook",
            "kernel": {"name": "python3"},
        },
        timeout=WAIT,
    )
    assert code == 201, model
    kernel_id = model["kernel"]["id"]
    assert any(
        k["id"] == kernel_id for k in gateway.ok("GET", "/api/kernels")
    )  # it is the gateway's

    ws = await asyncio.wait_for(StockSocket.open(ws_client(lab), kernel_id, v1=v1), WAIT)
    try:
        reply, text = await run(ws, "x = 6 * 7; print(x)")
        assert reply["status"] == "ok" and text == "42\n"

        # interrupt through the lab (the gateway's kernel is interrupted)
        msg_id = ws.execute("import time; time.sleep(60)")
        await ws.until(
            lambda m: (
                m["channel"] == "iopub"
                and m["header"]["msg_type"] == "execute_input"
                and m["parent_header"].get("msg_id") == msg_id
            )
        )
        assert lab.call("POST", f"/api/kernels/{kernel_id}/interrupt")[0] == 204
        reply = await ws.reply_to(msg_id)
        assert (
            reply["content"]["status"] == "error"
            and reply["content"]["ename"] == "KeyboardInterrupt"
        )

        reply, text = await run(ws, "print(x)")  # the kernel's state survived
        assert text == "42\n"
    finally:
        ws.conn.close()

    # the session_ext on the lab side supervises nothing: the kernels are the gateway's
    assert lab.ok("GET", "/supervisor/sessions")["sessions"] == []
    assert lab.call("DELETE", f"/api/sessions/{model['id']}", timeout=WAIT)[0] == 204
    assert all(k["id"] != kernel_id for k in gateway.ok("GET", "/api/kernels"))
