"""The channels websocket: envelope, both client orders, several clients, buffering, stdin."""

import asyncio
import os
import socket
import struct
import sys
import uuid

from ..support.helpers import is_status, kernel_event, stream_text

KERNELS_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "kernels")


async def test_connect_then_start_sees_starting_idle_and_process_output(api):
    argv = [
        sys.executable,
        os.path.join(KERNELS_DIR, "positron_kernel.py"),
        "-f",
        "{connection_file}",
    ]
    session_id = await api.create(argv=argv, display_name="P", language="python")
    ws = await api.channels(session_id)
    assert (await api.session(session_id))["connected"] is True
    await api.ok("POST", f"sessions/{session_id}/start", timeout=60)
    starting = await ws.until(kernel_event("status"))
    assert starting["status"]["status"] == "starting"
    idle = await ws.until(kernel_event("status"))
    assert idle["status"]["status"] == "idle"
    outputs = [m["output"] for m in ws.received if kernel_event("output")(m)]
    assert ["stderr", "positron kernel starting\n"] in outputs
    # the supervisor's own startup kernel_info is not shown to clients
    assert not any(
        m.get("channel") == "iopub" and m["parent_header"].get("msg_type") == "kernel_info_request"
        for m in ws.received
    )
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_start_then_connect_and_execute(api):
    session_id = await api.started()
    ws = await api.channels(session_id)
    msg_id = ws.execute("print('hello')")
    reply = await ws.reply_to(msg_id)
    assert reply["kind"] == "jupyter" and reply["content"]["status"] == "ok"
    assert {"msg_id", "msg_type", "session", "username", "date", "version"} <= set(reply["header"])
    await ws.idle_of(msg_id)
    assert stream_text(ws.received, msg_id) == "hello\n"
    busy = [m for m in ws.received if kernel_event("status")(m) and m["status"]["status"] == "busy"]
    assert busy and busy[0]["status"]["reason"] == "execute_request"
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_two_clients_share_iopub_and_get_their_own_replies(api):
    session_id = await api.started()
    a = await api.channels(session_id)
    b = await api.channels(session_id)
    msg_id = a.execute("print('both')")
    await a.reply_to(msg_id)
    await a.idle_of(msg_id)
    await b.idle_of(msg_id)
    assert stream_text(b.received, msg_id) == "both\n"
    kernel_info = {
        "kind": "jupyter",
        "channel": "shell",
        "header": {"msg_id": "ki-b", "msg_type": "kernel_info_request"},
        "parent_header": {},
        "metadata": {},
        "content": {},
    }
    b.send(kernel_info)
    await b.reply_to("ki-b")
    await b.idle_of("ki-b")
    await a.idle_of("ki-b")  # a sees b's iopub...
    replies_to_a = [m for m in a.received if m.get("channel") == "shell"]
    assert [m["parent_header"]["msg_id"] for m in replies_to_a] == [msg_id]  # ...not b's reply
    a.close()
    await asyncio.sleep(0.1)
    assert (await api.session(session_id))["connected"] is True
    b.close()
    for _ in range(50):
        if not (await api.session(session_id))["connected"]:
            break
        await asyncio.sleep(0.05)
    assert (await api.session(session_id))["connected"] is False
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_exclusive_client_displaces_the_others(api):
    session_id = await api.started()
    first = await api.channels(session_id)
    second = await api.channels(session_id, exclusive="true")
    displaced = await first.until(kernel_event("clientDisconnected"))
    assert "Another client" in displaced["clientDisconnected"]
    assert await first.recv() is None  # closed
    msg_id = second.execute("1")
    await second.reply_to(msg_id)
    second.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_invalid_frames_get_an_error_and_the_socket_stays_open(api):
    session_id = await api.started()
    ws = await api.channels(session_id)
    for frame, word in [
        ("not json", "JSON"),
        ("[1, 2]", "object"),
        ('{"header": {"msg_id": "x"}}', "msg_type"),
        ('{"header": {"msg_type": "execute_request"}, "channel": "iopub"}', "channel"),
        ('{"kind": "other", "header": {}}', "kind"),
        ('{"header": {"msg_type": "kernel_info_request"}, "buffers": ["***"]}', "buffers"),
    ]:
        ws.conn.write_message(frame)
        error = await ws.until(kernel_event("error"))
        assert word in error["error"]["message"], (frame, error)
        assert error["error"]["code"] == "bad_request"
    msg_id = ws.execute("'still open'")
    assert (await ws.reply_to(msg_id))["content"]["status"] == "ok"
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_messages_for_a_stopped_kernel_are_refused_not_kept(api):
    session_id = await api.create()
    ws = await api.channels(session_id)
    ws.execute("stale = True")
    error = await ws.until(kernel_event("error"))
    assert error["error"]["code"] == "KS-3"
    await api.ok("POST", f"sessions/{session_id}/start", timeout=60)
    reply = await api.execute(session_id, "print('stale' in globals())")
    assert reply["output"][0]["text"] == "False\n"
    # and after the kernel exits, too
    await api.ok("POST", f"sessions/{session_id}/kill")
    exited = await ws.until(kernel_event("exited"))
    assert exited["exited"] is not None
    ws.execute("stale = True")
    assert (await ws.until(kernel_event("error")))["error"]["code"] == "KS-3"
    ws.close()


async def test_output_while_detached_is_replayed_in_order(api):
    session_id = await api.started()
    ws = await api.channels(session_id)
    # the output starts after the client has gone
    msg_id = ws.execute(
        "import time\ntime.sleep(0.5)\nfor i in range(5):\n    print(i, flush=True)\n    time.sleep(0.1)"
    )
    await ws.until(lambda m: is_status(m, "busy", msg_id))
    ws.close()
    await api.wait_status(session_id, "idle")
    await asyncio.sleep(0.2)
    assert (await api.session(session_id))["connected"] is False
    again = await api.channels(session_id)
    await again.reply_to(msg_id)
    await again.idle_of(msg_id)
    assert stream_text(ws.received + again.received, msg_id) == "0\n1\n2\n3\n4\n"
    again.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_buffer_overflow_drops_the_oldest_and_says_so(api, supervisor):
    supervisor.config.buffer_max_messages = 10
    session_id = await api.started()
    reply = await api.execute(session_id, "for i in range(30): print(i, flush=True)")
    assert reply["status"] == "ok"
    await asyncio.sleep(0.2)
    ws = await api.channels(session_id)
    first = await ws.recv()
    assert first["kind"] == "kernel" and first["messagesDropped"] > 0
    kept = [await ws.recv() for _ in range(10)]
    kept = [m for m in kept if "output" not in m]  # the process's own stderr may come late
    assert kept[-1] == {"kind": "kernel", "status": {"status": "idle", "reason": "execute_request"}}
    assert is_status(kept[-2], "idle")  # the newest ones were kept
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_stdin_round_trip_and_waiting_input(api):
    session_id = await api.started()
    ws = await api.channels(session_id)
    msg_id = ws.execute("name = input('who? '); print('hi', name)", allow_stdin=True)
    request = await ws.until(lambda m: m.get("channel") == "stdin")
    assert request["header"]["msg_type"] == "input_request"
    assert request["content"]["prompt"] == "who? "
    assert (await api.session(session_id))["waiting_input"] is True
    ws.send(
        {
            "channel": "stdin",
            "header": {"msg_id": uuid.uuid4().hex, "msg_type": "input_reply"},
            "parent_header": request["header"],
            "content": {"value": "ada"},
        }
    )
    await ws.reply_to(msg_id)
    await ws.idle_of(msg_id)
    assert stream_text(ws.received, msg_id) == "hi ada\n"
    assert (await api.session(session_id))["waiting_input"] is False
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_working_directory_change_is_announced(api, tmp_path):
    session_id = await api.started()
    ws = await api.channels(session_id)
    ws.execute(f"import os; os.chdir({str(tmp_path)!r})")
    changed = await ws.until(kernel_event("workingDirChanged"))
    assert changed["workingDirChanged"] == str(tmp_path)
    assert (await api.session(session_id))["working_directory"] == str(tmp_path)
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_channels_of_unknown_session_and_without_token(api):
    import tornado.httpclient

    try:
        await api.channels("nope")
        raise AssertionError("connected to an unknown session")
    except tornado.httpclient.HTTPClientError as e:
        assert e.code == 404
    session_id = await api.create()
    try:
        await api.ws(f"sessions/{session_id}/channels", headers={})
        raise AssertionError("connected without a token")
    except tornado.httpclient.HTTPClientError as e:
        assert e.code == 401


async def test_a_flood_of_output_loses_nothing(api):
    """Every stream message of a chatty cell arrives, and the queue moves on after it."""
    session_id = await api.started()
    ws = await api.channels(session_id)
    n = 20000
    flood = ws.execute(
        f"import sys\nfor i in range({n}):\n    sys.stdout.write('x\\n'); sys.stdout.flush()"
    )
    after = ws.execute("'after'")
    await ws.reply_to(after, timeout=120)
    streams = [
        m
        for m in ws.received
        if m.get("channel") == "iopub"
        and m["header"]["msg_type"] == "stream"
        and m["parent_header"].get("msg_id") == flood
    ]
    assert sum(m["content"]["text"].count("x") for m in streams) == n
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_jupyter_server_sees_our_kernels_activity(api, jp_fetch):
    import json

    session_id = await api.started()
    kernel_id = (await api.session(session_id))["kernel_id"]
    task = asyncio.ensure_future(api.execute(session_id, "import time; time.sleep(1)"))
    await api.wait_status(session_id, "busy")
    model = json.loads((await jp_fetch("api", "kernels", kernel_id)).body)
    assert model["execution_state"] == "busy"
    await task
    await api.wait_status(session_id, "idle")
    model = json.loads((await jp_fetch("api", "kernels", kernel_id)).body)
    assert model["execution_state"] == "idle"
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_large_and_small_frames_arrive_whole(api):
    """Frames of every websocket length encoding (7-bit, 16-bit, 64-bit) arrive intact."""
    session_id = await api.started()
    ws = await api.channels(session_id)
    for size in (10, 300, 70000):
        msg_id = ws.execute(f"print('y' * {size})")
        await ws.idle_of(msg_id)
        assert stream_text(ws.received, msg_id) == "y" * size + "\n"
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


def stream_lines(messages: list[dict], parent: str) -> list[int]:
    return [int(line) for line in stream_text(messages, parent).split()]


async def test_a_client_leaving_mid_stream_loses_nothing(api):
    """Frames that reach a connection as it closes (its close frame received, the socket
    dying) are not thrown away: they wait in the session's buffer for the next client, in
    order, so what the first client read plus what the next one gets is the whole stream."""
    session_id = await api.started()
    ws = await api.channels(session_id)
    msg_id = ws.execute("import sys\nfor i in range(20000): print(i, flush=True)")
    await ws.until(lambda m: "5000\n" in m.get("content", {}).get("text", ""))
    ws.conn.close()  # a close frame while the kernel still streams
    while await ws.recv() is not None:  # what the server sent before its own close frame
        pass
    await asyncio.sleep(0.5)
    again = await api.channels(session_id)
    await again.idle_of(msg_id, timeout=60)
    dropped = [m["messagesDropped"] for m in again.received if "messagesDropped" in m]
    assert dropped == []
    first, rest = stream_lines(ws.received, msg_id), stream_lines(again.received, msg_id)
    assert first and rest and first + rest == list(range(20000))
    again.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_a_dead_connection_hands_back_what_it_never_sent(api, supervisor):
    """A client stops reading, then its connection dies (a TCP reset) while the server still
    holds megabytes for it: what never left the server is replayed to the next client, in
    order and without duplicates. Only what the operating system had already taken for the
    dead socket (its buffers, at most) is gone, and a frame cut in two is announced."""
    supervisor.config.buffer_max_messages = 50_000  # room for all of it while detached
    session_id = await api.started()
    ws = await api.channels(session_id)
    pad = "x" * 1500
    msg_id = ws.execute(f"for i in range(20000): print(i, '{pad}', flush=True)")
    await ws.until(lambda m: m.get("content", {}).get("text", "").startswith("2000 "))
    await api.wait_status(session_id, "idle", timeout=120)  # all of it is on the server now
    sock = ws.conn.stream.socket
    client_buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.conn.stream.close()  # RST: nothing more is read on this side
    await asyncio.sleep(0.5)
    again = await api.channels(session_id)
    await again.idle_of(msg_id, timeout=60)

    def numbers(messages):
        return [int(line.split()[0]) for line in stream_text(messages, msg_id).splitlines()]

    first, rest = numbers(ws.received), numbers(again.received)
    assert first == list(range(len(first))) and rest, "the replay has the rest"
    assert rest == list(range(rest[0], 20000)), "in order, to the end, no duplicates"
    lost_bytes = (rest[0] - len(first)) * (len(pad) + 300)  # upper bound of a frame's size
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:  # noqa: ASYNC230 (procfs: never blocks)
        server_buffer = int(f.read().split()[2])  # the most a socket's send buffer grows to
    assert lost_bytes <= client_buffer + server_buffer, (len(first), rest[0])
    dropped = [m["messagesDropped"] for m in again.received if "messagesDropped" in m]
    assert dropped in ([], [1])  # a frame the reset cut in two
    again.close()
    await api.ok("POST", f"sessions/{session_id}/kill")
