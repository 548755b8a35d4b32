"""jupyter_server's own kernel and session API keeps its behaviour with session_ext enabled
(scenarios after jupyter_server's tests/services/{kernels,sessions}/test_api.py)."""

import json

import tornado

from ..support.kernel_ws import StockSocket


async def fetch_json(jp_fetch, *parts, method="GET", body=None):
    r = await jp_fetch(*parts, method=method, body=json.dumps(body) if body is not None else None)
    return json.loads(r.body) if r.body else None


async def test_kernels_api(jp_fetch):
    assert await fetch_json(jp_fetch, "api", "kernels") == []
    kernel = await fetch_json(jp_fetch, "api", "kernels", method="POST", body={"name": "python3"})
    assert kernel["name"] == "python3"
    assert [k["id"] for k in await fetch_json(jp_fetch, "api", "kernels")] == [kernel["id"]]
    got = await fetch_json(jp_fetch, "api", "kernels", kernel["id"])
    assert got["id"] == kernel["id"] and got["execution_state"] in ("starting", "idle", "busy")
    r = await jp_fetch("api", "kernels", kernel["id"], "interrupt", method="POST", body="")
    assert r.code == 204
    restarted = await fetch_json(
        jp_fetch, "api", "kernels", kernel["id"], "restart", method="POST", body={}
    )
    assert restarted["id"] == kernel["id"]
    r = await jp_fetch("api", "kernels", kernel["id"], method="DELETE")
    assert r.code == 204
    assert await fetch_json(jp_fetch, "api", "kernels") == []
    try:
        await jp_fetch("api", "kernels", kernel["id"])
        raise AssertionError("deleted kernel still found")
    except tornado.httpclient.HTTPClientError as e:
        assert e.code == 404


async def test_sessions_api(jp_fetch, api):
    body = {
        "path": "foo/nb1.ipynb",
        "type": "notebook",
        "name": "nb1.ipynb",
        "kernel": {"name": "python3"},
    }
    session = await fetch_json(jp_fetch, "api", "sessions", method="POST", body=body)
    assert session["path"] == "foo/nb1.ipynb" and session["type"] == "notebook"
    assert [s["id"] for s in await fetch_json(jp_fetch, "api", "sessions")] == [session["id"]]
    got = await fetch_json(jp_fetch, "api", "sessions", session["id"])
    assert got["kernel"]["id"] == session["kernel"]["id"]
    # re-POSTing the same path reuses the session (stock behaviour)
    again = await fetch_json(jp_fetch, "api", "sessions", method="POST", body=body)
    assert again["id"] == session["id"]
    # change the kernel: a new kernel, and the mirror follows it
    other = await fetch_json(
        jp_fetch,
        "api",
        "sessions",
        session["id"],
        method="PATCH",
        body={"kernel": {"name": "python3"}},
    )
    assert other["kernel"]["id"] != session["kernel"]["id"]
    mirrored = await api.session(session["id"])  # starting until a client talks to it
    assert mirrored["kernel_id"] == other["kernel"]["id"] and mirrored["status"] == "starting"
    r = await jp_fetch("api", "sessions", session["id"], method="DELETE")
    assert r.code == 204
    assert await fetch_json(jp_fetch, "api", "sessions") == []
    assert await fetch_json(jp_fetch, "api", "kernels") == []


async def test_stock_websocket_kernel_info_and_non_execute_requests(jp_fetch, api):
    kernel = await fetch_json(jp_fetch, "api", "kernels", method="POST", body={"name": "python3"})
    ws = await StockSocket.open(api, kernel["id"])
    ws.conn.write_message(
        json.dumps(
            {
                "channel": "shell",
                "header": {
                    "msg_id": "ki",
                    "msg_type": "kernel_info_request",
                    "session": "s",
                    "username": "u",
                    "version": "5.3",
                    "date": "",
                },
                "parent_header": {},
                "metadata": {},
                "content": {},
            }
        )
    )
    reply = await ws.reply_to("ki")
    assert reply["header"]["msg_type"] == "kernel_info_reply"
    # a bare kernel (no session): executes still work, straight to the kernel
    msg_id = ws.execute("print('plain')")
    assert (await ws.reply_to(msg_id))["content"]["status"] == "ok"
    ws.conn.close()
    await jp_fetch("api", "kernels", kernel["id"], method="DELETE")
