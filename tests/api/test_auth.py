"""401 for no or wrong credentials on every route (REST and websockets), 403 for a known user
the authorizer refuses: Positron treats exactly 401 as "my token is stale"."""

import pytest
import tornado.httpclient
from jupyter_server.auth.authorizer import Authorizer

ROUTES = [
    ("GET", "status"),
    ("GET", "sessions"),
    ("PUT", "sessions"),
    ("POST", "sessions"),
    ("GET", "sessions/s1"),
    ("DELETE", "sessions/s1"),
    ("POST", "sessions/s1/start"),
    ("POST", "sessions/s1/restart"),
    ("POST", "sessions/s1/interrupt"),
    ("POST", "sessions/s1/kill"),
    ("PUT", "sessions/s1/adopt"),
    ("GET", "sessions/s1/connection_info"),
    ("POST", "sessions/s1/execute"),
    ("GET", "sessions/s1/history"),
    ("GET", "sessions/s1/queue"),
    ("DELETE", "sessions/s1/queue/m1"),
    ("POST", "shutdown"),
    ("POST", "client_heartbeat"),
    ("GET", "server_configuration"),
    ("POST", "server_configuration"),
    ("GET", "openapi.yaml"),
    ("GET", "no/such/endpoint"),
]


class ReadOnlyAuthorizer(Authorizer):
    """Lets every known user read, nobody do anything else."""

    def is_authorized(self, handler, user, action, resource):
        return action == "read"


async def test_no_or_wrong_credentials_are_401_everywhere(api):
    await api.create(session_id="s1")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "token wrong"}):
        for method, path in ROUTES:
            body = {} if method in ("POST", "PUT") else None
            r = await api.call(method, path, body, headers=headers, validate=False)
            assert r.code == 401, (headers, method, path, r)
            assert r.json["code"] == "unauthorized" and r.json["message"], r
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        for path in ("events", "sessions/s1/channels"):
            with pytest.raises(tornado.httpclient.HTTPClientError) as info:
                await api.ws(path, headers=headers)
            assert info.value.code == 401, (headers, path)


async def test_the_authorizers_refusal_of_a_known_user_is_403(api, jp_serverapp):
    jp_serverapp.authorizer = ReadOnlyAuthorizer(parent=jp_serverapp)
    jp_serverapp.web_app.settings["authorizer"] = jp_serverapp.authorizer
    assert (await api.ok("GET", "status"))["server_id"]
    r = await api.call("PUT", "sessions", {"kernel_name": "python3"})
    assert r.code == 403 and r.json["code"] == "forbidden", r
    with pytest.raises(tornado.httpclient.HTTPClientError) as info:
        await api.ws("sessions/nope/channels")
    assert info.value.code == 403


async def test_server_id_is_in_the_status(api, supervisor):
    status = await api.ok("GET", "status")
    assert status["server_id"] == supervisor.server_id and len(status["server_id"]) >= 16
