"""Bad input is a 400 (413 for a body too large) with a JSON error naming the field."""

import json
import sys

import pytest

from ..support.helpers import kernel_event

SMALL_LIMIT = 4096  # max_body_bytes in these tests


@pytest.fixture
def jp_server_config(jp_server_config):
    jp_server_config["SessionExtApp"]["max_body_bytes"] = SMALL_LIMIT
    return jp_server_config


async def bad(api, method, path, raw: bytes, field: str, status=400):
    r = await api.call(method, path, raw=raw)
    assert r.code == status, (raw[:200], r)
    assert r.headers["Content-Type"].startswith("application/json")
    assert field in r.json["message"], (field, r)
    return r


@pytest.mark.parametrize(
    "raw, field",
    [
        (b'{"idle_shutdown_hours": NaN}', "idle_shutdown_hours"),
        (b'{"resource_sample_interval_ms": Infinity}', "resource_sample_interval_ms"),
        (b'{"resource_sample_interval_ms": -Infinity}', "resource_sample_interval_ms"),
        (b'{"idle_shutdown_hours": 1e999}', "idle_shutdown_hours"),
    ],
)
async def test_non_finite_numbers_in_server_configuration(api, raw, field):
    await bad(api, "POST", "server_configuration", raw, field)
    assert (await api.ok("GET", "server_configuration"))["idle_shutdown_hours"] == -1


async def test_non_finite_numbers_in_new_session_and_execute(api):
    await bad(
        api,
        "PUT",
        "sessions",
        b'{"kernel_name": "python3", "connection_timeout": NaN}',
        "connection_timeout",
    )
    raw = b'{"kernel_name": "python3", "metadata": {"x": [Infinity]}}'
    await bad(api, "PUT", "sessions", raw, "metadata.x[0]")
    assert (await api.ok("GET", "sessions"))["total"] == 0
    session_id = await api.create()
    await bad(
        api,
        "POST",
        f"sessions/{session_id}/execute",
        b'{"code": "1", "timeout_seconds": NaN}',
        "timeout_seconds",
    )


async def test_deep_nesting_is_400(api):
    r = await api.call("PUT", "sessions", raw=b"[" * 2000 + b"]" * 2000)
    assert r.code == 400 and "nested" in r.json["message"], r
    r = await api.call(
        "PUT",
        "sessions",
        raw=b'{"kernel_name": "python3", "metadata": {"a": ' + b"[" * 70 + b"]" * 70 + b"}}",
    )
    assert r.code == 400 and "metadata" in r.json["message"] and "nested" in r.json["message"], r
    assert (await api.ok("GET", "sessions"))["total"] == 0


async def test_deep_nesting_past_the_recursion_limit(api, extension):
    extension.max_body_bytes = 300_000
    raw = b"[" * 100_000 + b"]" * 100_000
    for method, path in (
        ("PUT", "sessions"),
        ("POST", "server_configuration"),
        ("POST", "client_heartbeat"),
    ):
        r = await api.call(method, path, raw=raw)
        assert r.code == 400 and "nested" in r.json["message"], (path, r)


@pytest.mark.parametrize(
    "name",
    ["A=B", "A\u0000B", "=", ""],
)
async def test_env_names_with_nul_or_equals_are_refused(api, name):
    env = [{"action": "replace", "name": name, "value": "1"}]
    r = await api.call("PUT", "sessions", {"kernel_name": "python3", "env": env})
    assert r.code == 400 and "env[0].name" in r.json["message"], r
    session_id = await api.create()
    r = await api.call("POST", f"sessions/{session_id}/restart", {"env": env})
    assert r.code == 400 and "env[0].name" in r.json["message"], r
    assert (await api.session(session_id))["status"] == "uninitialized"


async def test_nul_in_env_values_and_argv_is_refused(api):
    env = [{"action": "replace", "name": "A", "value": "x\u0000"}]
    r = await api.call("PUT", "sessions", {"kernel_name": "python3", "env": env})
    assert r.code == 400 and "env[0].value" in r.json["message"], r
    r = await api.call(
        "PUT",
        "sessions",
        {"argv": [sys.executable, "-c", "\u0000"], "display_name": "x", "language": "x"},
    )
    assert r.code == 400 and "argv[2]" in r.json["message"], r


@pytest.mark.parametrize("session_id", [".", ".."])
async def test_dot_session_ids_are_refused(api, session_id):
    r = await api.call("PUT", "sessions", {"kernel_name": "python3", "session_id": session_id})
    assert r.code == 400 and "session_id" in r.json["message"], r
    await api.create(session_id="...")  # only the two path names are reserved


async def test_bodies_past_max_body_bytes_are_413(api):
    metadata = {"blob": "x" * SMALL_LIMIT}
    r = await api.call("PUT", "sessions", {"kernel_name": "python3", "metadata": metadata})
    assert r.code == 413 and r.json["code"] == "too_large", r
    assert str(SMALL_LIMIT) in r.json["message"]
    assert (await api.ok("GET", "sessions"))["total"] == 0
    r = await api.call("POST", "server_configuration", raw=b" " * (SMALL_LIMIT + 1))
    assert r.code == 413, r
    # just under the limit is fine
    body = {"kernel_name": "python3", "metadata": {"blob": "x" * (SMALL_LIMIT - 200)}}
    assert len(json.dumps(body)) < SMALL_LIMIT
    await api.ok("PUT", "sessions", body)


async def test_a_chunked_body_past_the_limit_is_413(api):
    """No Content-Length: the body is drained, not kept, and refused."""

    async def producer(write):
        for _ in range(4):
            await write(b" " * SMALL_LIMIT)
        await write(b"{}")

    response = await api.http.fetch(
        api.url("server_configuration"),
        method="POST",
        body_producer=producer,
        headers=dict(api.auth_header),
        raise_error=False,
        request_timeout=30,
    )
    assert response.code == 413 and json.loads(response.body)["code"] == "too_large"


async def test_metadata_and_tags_are_bounded(api, extension):
    extension.max_body_bytes = 1 << 20
    body = {"kernel_name": "python3", "metadata": {"b": "x" * 70_000}}
    r = await api.call("PUT", "sessions", body)
    assert r.code == 400 and "metadata" in r.json["message"], r
    r = await api.call("PUT", "sessions", {"kernel_name": "python3", "tags": ["t"] * 257})
    assert r.code == 400 and "tags" in r.json["message"], r
    r = await api.call("PUT", "sessions", {"kernel_name": "python3", "tags": ["t" * 257]})
    assert r.code == 400 and "tags[0]" in r.json["message"], r


async def test_null_bodies_are_refused(api):
    session_id = await api.create()
    for path in (
        "client_heartbeat",
        f"sessions/{session_id}/restart",
        "server_configuration",
        f"sessions/{session_id}/execute",
        "sessions",
    ):
        r = await api.call("POST", path, raw=b"null")
        assert r.code == 400 and "object" in r.json["message"], (path, r)
    assert (await api.session(session_id))["status"] == "uninitialized"
    assert await api.ok("POST", "client_heartbeat") is None  # no body at all is fine


async def test_405_has_an_allow_header(api):
    # OPTIONS is jupyter_server's (CORS preflight) on every REST route
    for method, path, allowed in [
        ("PATCH", "sessions", "GET, POST, PUT, OPTIONS"),
        ("DELETE", "status", "GET, OPTIONS"),
        ("GET", "shutdown", "POST, OPTIONS"),
        ("PUT", "server_configuration", "GET, POST, OPTIONS"),
        ("POST", "events", "GET"),
    ]:
        r = await api.call(method, path, {} if method != "GET" else None, validate=False)
        assert r.code == 405 and r.json["code"] == "method_not_allowed", (method, path, r)
        assert r.headers["Allow"] == allowed, (method, path, r.headers.get("Allow"))


async def test_plain_get_on_websocket_routes_is_a_json_400(api):
    session_id = await api.create()
    for path in ("events", f"sessions/{session_id}/channels"):
        r = await api.call("GET", path)
        assert r.code == 400 and r.json["code"] == "bad_request", (path, r)
        assert "websocket" in r.json["message"]


async def test_adopt_is_validated_by_the_schema(api):
    session_id = await api.create(argv=[], display_name="x", language="python")
    info = {
        "control_port": 1,
        "shell_port": 2,
        "stdin_port": 3,
        "hb_port": 4,
        "iopub_port": 5,
        "signature_scheme": "hmac-sha256",
        "key": "k",
        "transport": "tcp",
        "ip": "127.0.0.1",
    }
    for change, field in [
        ({"control_port": "1"}, "control_port"),
        ({"signature_scheme": "md5"}, "signature_scheme"),
        ({"transport": "udp"}, "transport"),
        ({"iopub_port": None}, "iopub_port"),
        ({"hb_port": 1.5}, "hb_port"),
        ({"shell_port": 70000}, "shell_port"),
        ({"ip": "\u00be\u00b0@dU"}, "ip"),  # was a 500, left 'starting'
        ({"transport": "ipc", "ip": "x" * 200}, "ip"),
    ]:
        r = await api.call("PUT", f"sessions/{session_id}/adopt", {**info, **change})
        assert r.code == 400 and field in r.json["message"], (change, r)
        assert (await api.session(session_id))["status"] == "uninitialized"
    body = dict(info)
    del body["ip"]
    r = await api.call("PUT", f"sessions/{session_id}/adopt", body)
    assert r.code == 400 and r.json["message"] == "Field 'ip' is required", r


async def test_websocket_frames_are_strict_json_too(api):
    session_id = await api.started()
    ws = await api.channels(session_id)
    ws.conn.write_message('{"header": {"msg_type": "execute_request"}, "content": {"code": NaN}}')
    error = await ws.until(kernel_event("error"))
    assert error["error"]["message"] == "Field 'content.code' must be a finite number, not NaN"
    ws.conn.write_message("[" * 100 + "]" * 100)
    error = await ws.until(kernel_event("error"))
    assert "nested" in error["error"]["message"]
    msg_id = ws.execute("'still open'")
    assert (await ws.reply_to(msg_id))["content"]["status"] == "ok"
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")
