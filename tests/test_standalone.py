"""`jupyter session-ext` as a real subprocess, used the way Positron uses Kallichore."""

import json
import os
import time

import psutil
import websocket  # websocket-client, a jupyter_server dependency


def test_client_drives_a_standalone_supervisor(server):
    server.start()
    info = server.info
    assert info["transport"] == "tcp"
    assert info["base_path"] == f"http://127.0.0.1:{info['port']}/supervisor"  # absolute
    assert info["server_id"] == server.ok("GET", "status")["server_id"]
    assert info["bearer_token"] == server.token and info["server_pid"] == server.proc.pid
    assert oct(os.stat(server.connection_file).st_mode)[-3:] == "600"
    assert server.ok("GET", "status")["process_id"] == server.proc.pid

    server.ok(
        "PUT",
        "sessions",
        {
            "session_id": "positron-1",
            "kernel_name": "python3",
            "session_mode": "console",
            "display_name": "Python",
        },
    )
    kernel_info = server.ok("POST", "sessions/positron-1/start", timeout=60)
    assert kernel_info["language_info"]["name"] == "python"
    pid = server.ok("GET", "sessions/positron-1")["process_id"]

    ws = websocket.create_connection(
        info["base_path"].replace("http://", "ws://") + "/sessions/positron-1/channels",
        header=[f"Authorization: Bearer {info['bearer_token']}"],
        timeout=30,
    )
    ws.send(
        json.dumps(
            {
                "kind": "jupyter",
                "channel": "shell",
                "header": {"msg_id": "m1", "msg_type": "execute_request"},
                "parent_header": {},
                "metadata": {},
                "content": {"code": "print(6 * 7)", "silent": False},
            }
        )
    )
    text = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv())
        if (
            msg.get("channel") == "iopub"
            and msg["header"]["msg_type"] == "stream"
            and msg["content"]["name"] == "stdout"
        ):
            text += msg["content"]["text"]
        if (  # the outputs come before the request's idle (the reply, on shell, may not)
            msg.get("channel") == "iopub"
            and msg["header"]["msg_type"] == "status"
            and msg["content"]["execution_state"] == "idle"
            and msg["parent_header"].get("msg_id") == "m1"
        ):
            break
    assert text == "42\n"
    ws.close()

    code, error = server.call("GET", "sessions/nope")
    assert code == 404 and error["code"] == "KS-1"
    assert server.ok("POST", "shutdown") is None
    assert server.proc.wait(30) == 0
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
