"""Test helpers: an API client that checks responses against our OpenAPI document, and
websocket helpers with a timeout on every wait."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import sys
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket
import yaml
from jupyter_server.utils import url_path_join
from openapi_schema_validator import OAS30Validator

from session_ext.core import validation

ROOT = Path(__file__).resolve().parents[2]
OPENAPI_PATH = Path(validation.OPENAPI_PATH)  # the package's own constant: one path
# Reference material kept beside the repository on the project's own machines (CI always has
# it); a plain clone does not, and the tests that need it skip (see ``reference``).
SHARED_REFERENCE = ROOT.parent / "shared" / "reference"
REQUIRE_REFERENCE = "SESSION_EXT_REQUIRE_REFERENCE"  # set by .ci/run: a skip would be a failure
WAIT = 30  # seconds: the longest any single wait in a test may take


def server_config(**server_app: Any) -> dict:
    """The in-process test server's config: the extension on, fast heartbeats, no store;
    ``server_app``: more ServerApp settings."""
    return {
        "ServerApp": {"jpserver_extensions": {"session_ext": True}, **server_app},
        "SessionExtApp": {
            "db_path": ":memory:",
            "heartbeat_interval": 0.5,
            "heartbeat_timeout": 2.0,
            "shutdown_wait": 3.0,
            "resource_sample_interval_ms": 0,
        },
    }


IPYKERNEL_ARGV = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def connection_fields() -> list[str]:
    """The fields of the API's ConnectionInfo, as our OpenAPI document says."""
    return yaml.safe_load(OPENAPI_PATH.read_text())["components"]["schemas"]["ConnectionInfo"][
        "required"
    ]


def adopt_body(km: Any) -> dict:
    """An adopt request's body (ConnectionInfo) for a kernel a KernelManager started."""
    info = km.get_connection_info()
    return {
        k: (info[k].decode() if isinstance(info[k], bytes) else info[k])
        for k in connection_fields()
    }


def resolve_refs(node: Any, components: dict) -> Any:
    """Inline ``#/components/schemas/X`` references (the validator then needs no registry)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if ref:
            name = ref.rsplit("/", 1)[-1]
            siblings = {k: v for k, v in node.items() if k != "$ref"}  # e.g. nullable
            return resolve_refs({**components[name], **siblings}, components)
        return {k: resolve_refs(v, components) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_refs(v, components) for v in node]
    return node


class OpenAPI:
    """Validates responses against an OpenAPI 3.0 document."""

    def __init__(self, doc: dict):
        self.doc = doc
        self.components = doc.get("components", {}).get("schemas", {})
        self.paths = []
        for template, item in doc["paths"].items():
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            self.paths.append((re.compile(f"^{pattern}$"), template, item))

    @classmethod
    def load(cls, path: Path = OPENAPI_PATH) -> OpenAPI:
        return cls(yaml.safe_load(path.read_text()))

    def schema(self, name: str) -> dict:
        return resolve_refs(self.components[name], self.components)

    def validate_schema(self, name: str, value: Any) -> None:
        OAS30Validator(self.schema(name)).validate(value)

    def validate_response(self, method: str, path: str, status: int, body: Any) -> None:
        for pattern, template, item in self.paths:
            if pattern.match(path):
                operation = item.get(method.lower())
                assert operation is not None, f"{method} {template} is not in openapi.yaml"
                responses = operation["responses"]
                response = responses.get(str(status)) or responses.get("default")
                assert response is not None, f"{method} {template} → {status} not in openapi.yaml"
                if "$ref" in response:
                    name = response["$ref"].rsplit("/", 1)[-1]
                    response = self.doc["components"]["responses"][name]
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if schema is not None:
                    OAS30Validator(resolve_refs(schema, self.components)).validate(body)
                return
        raise AssertionError(f"{path} is not in openapi.yaml")


def reference(name: str, what: str) -> Path:
    """A file of ``../shared/reference``; skips the test when it is absent (a contributor's
    clone), fails it instead where the reference must be there (CI)."""
    path = SHARED_REFERENCE / name
    if path.exists():
        return path
    reason = f"{what} reference not found at {path}; compatibility checks skipped"
    if os.environ.get(REQUIRE_REFERENCE):
        pytest.fail(f"{reason} ({REQUIRE_REFERENCE} is set: it must be there)")
    pytest.skip(reason)


def kallichore_reference() -> OpenAPI:
    """Kallichore's spec (shared/reference), with its optional fields allowed to be null:
    it describes absent values by omission, we send null (design: process_id and
    resource_usage are null without a local process)."""
    doc = yaml.safe_load(reference("kallichore-openapi.yaml", "Kallichore").read_text())
    doc = copy.deepcopy(doc)
    for schema in doc["components"]["schemas"].values():
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            if name not in required:
                prop["nullable"] = True
    return OpenAPI(doc)


class Response:
    def __init__(self, code: int, body: bytes, headers: Any):
        self.code = code
        self.raw = body
        self.headers = headers
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self) -> str:
        return f"<Response {self.code} {self.raw[:300]!r}>"


class Api:
    def __init__(self, http_client, auth_header, base_url, port, openapi: OpenAPI):
        self.http = http_client
        self.auth_header = auth_header
        self.base_url = base_url
        self.port = port
        self.openapi = openapi

    def url(self, path: str, params: dict | None = None, scheme: str | None = None) -> str:
        """The request path (the test client adds the host), or a full URL for ``scheme``."""
        full = url_path_join(self.base_url, "supervisor", path)
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        host = f"{scheme}://127.0.0.1:{self.port}" if scheme else ""
        return f"{host}{full}{query}"

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        params: dict | None = None,
        headers: dict | None = None,
        timeout: float = WAIT,
        validate: bool = True,
    ) -> Response:
        hdrs = dict(self.auth_header) if headers is None else dict(headers)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is None and method in ("POST", "PUT"):
            data = b""
        response = await self.http.fetch(
            self.url(path, params),
            method=method,
            body=data,
            headers=hdrs,
            request_timeout=timeout,
            raise_error=False,
            allow_nonstandard_methods=True,
        )
        result = Response(response.code, response.body or b"", response.headers)
        if response.code >= 400:
            assert response.headers.get("Content-Type", "").startswith("application/json"), result
            assert (
                isinstance(result.json, dict) and "code" in result.json
            ) or "error" in result.json, result
        if validate and result.headers.get("Content-Type", "").startswith("application/json"):
            self.openapi.validate_response(
                method, "/" + path.split("?")[0], response.code, result.json
            )
        return result

    async def ok(self, method: str, path: str, body: Any = None, **kw) -> Any:
        r = await self.call(method, path, body, **kw)
        assert r.code == 200, r
        return r.json

    async def create(self, **fields) -> str:
        fields.setdefault("session_id", f"test-{uuid.uuid4().hex[:8]}")
        if "argv" not in fields and "kernel_name" not in fields:
            fields["kernel_name"] = "python3"
        return (await self.ok("PUT", "sessions", fields))["session_id"]

    async def started(self, **fields) -> str:
        session_id = await self.create(**fields)
        await self.ok("POST", f"sessions/{session_id}/start", timeout=60)
        return session_id

    async def session(self, session_id: str) -> dict:
        return await self.ok("GET", f"sessions/{session_id}")

    async def wait_status(self, session_id: str, *statuses: str, timeout: float = WAIT) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            model = await self.session(session_id)
            if model["status"] in statuses:
                return model
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"status {model['status']!r}, expected one of {statuses}")
            await asyncio.sleep(0.05)

    async def execute(self, session_id: str, code: str, **kw) -> dict:
        return await self.ok("POST", f"sessions/{session_id}/execute", {"code": code, **kw})

    async def ws(self, path: str, params: dict | None = None, headers: dict | None = None):
        hdrs = dict(self.auth_header) if headers is None else headers
        request = tornado.httpclient.HTTPRequest(
            self.url(path, params, scheme="ws"), headers=hdrs, connect_timeout=WAIT
        )
        conn = await asyncio.wait_for(tornado.websocket.websocket_connect(request), WAIT)
        return Channel(conn)

    async def channels(self, session_id: str, **params) -> Channel:
        return await self.ws(f"sessions/{session_id}/channels", params or None)


class Channel:
    """A websocket client that remembers everything it received."""

    def __init__(self, conn):
        self.conn = conn
        self.received: list[dict] = []

    async def recv(self, timeout: float = WAIT) -> dict | None:
        raw = await asyncio.wait_for(self.conn.read_message(), timeout)
        if raw is None:
            return None
        msg = json.loads(raw)
        self.received.append(msg)
        return msg

    async def until(self, predicate: Callable[[dict], bool], timeout: float = WAIT) -> dict:
        """Read until a message matches; AssertionError (with what came) on timeout/close."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                msg = await self.recv(max(left, 0.01))
            except asyncio.TimeoutError:
                raise AssertionError(f"no matching message; got {self.received[-10:]}") from None
            if msg is None:
                raise AssertionError(f"socket closed; got {self.received[-10:]}")
            if predicate(msg):
                return msg

    def send(self, msg: dict) -> None:
        self.conn.write_message(json.dumps(msg))

    def execute(self, code: str, msg_id: str | None = None, **content) -> str:
        msg_id = msg_id or uuid.uuid4().hex
        self.send(execute_request(code, msg_id, **content))
        return msg_id

    async def seen_or_until(self, predicate: Callable[[dict], bool], timeout: float = WAIT) -> dict:
        """The first message so far that matches, else the next one that does."""
        for msg in self.received:
            if predicate(msg):
                return msg
        return await self.until(predicate, timeout)

    async def reply_to(self, msg_id: str, timeout: float = WAIT) -> dict:
        return await self.seen_or_until(
            lambda m: (
                m.get("channel") == "shell"
                and m["header"]["msg_type"].endswith("_reply")
                and m["parent_header"].get("msg_id") == msg_id
            ),
            timeout,
        )

    async def idle_of(self, msg_id: str, timeout: float = WAIT) -> dict:
        return await self.seen_or_until(lambda m: is_status(m, "idle", msg_id), timeout)

    def close(self) -> None:
        self.conn.close()


def execute_request(code: str, msg_id: str, **content) -> dict:
    return {
        "kind": "jupyter",
        "channel": "shell",
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "test",
            "session": "test",
            "version": "5.3",
            "date": "2026-01-01T00:00:00Z",
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
            **content,
        },
        "buffers": [],
    }


def is_status(msg: dict, state: str, parent: str | None = None) -> bool:
    return (
        msg.get("channel") == "iopub"
        and msg["header"]["msg_type"] == "status"
        and msg["content"].get("execution_state") == state
        and (parent is None or msg["parent_header"].get("msg_id") == parent)
    )


def stream_text(messages: list[dict], parent: str) -> str:
    return "".join(
        m["content"]["text"]
        for m in messages
        if m.get("channel") == "iopub"
        and m["header"]["msg_type"] == "stream"
        and m["parent_header"].get("msg_id") == parent
    )


def http_json(
    method: str, url: str, token: str, body: Any = None, timeout: float = WAIT
) -> tuple[int, Any]:
    """A JSON request with a token, as an outside client makes it: (status, JSON or None)."""
    import urllib.error
    import urllib.request

    data = (
        json.dumps(body).encode()
        if body is not None
        else (b"" if method in ("POST", "PUT") else None)
    )
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            code, raw = response.status, response.read()
    except urllib.error.HTTPError as e:
        code, raw = e.code, e.read()
    return code, (json.loads(raw) if raw else None)


class StandaloneServer:
    """`jupyter session-ext` as a real subprocess, driven over HTTP like a client would."""

    def __init__(self, workdir: Path, *args: str, app: str = "session-ext"):
        self.workdir = workdir
        self.args = list(args)
        self.app = app  # or "server": a plain `jupyter server` with the extension enabled
        self.token = uuid.uuid4().hex
        self.connection_file = workdir / "supervisor.json"
        self.runtime_dir = workdir / "runtime"
        self.proc = None
        self.info: dict = {}
        self.kernel_pids: set[int] = set()  # every kernel seen, killed at the end whatever happens

    def start(self, timeout: float = WAIT) -> StandaloneServer:
        import os
        import subprocess
        import time

        if self.connection_file.exists():
            self.connection_file.unlink()
        jupyter = str(Path(sys.executable).with_name("jupyter"))
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(self.runtime_dir)}
        self.log = open(self.workdir / "server.log", "ab")
        self.proc = subprocess.Popen(
            [
                jupyter,
                self.app,
                "--port=0",
                "--ip=127.0.0.1",
                "--allow-root",
                "--no-browser",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.workdir}",
                f"--SessionExtApp.connection_file={self.connection_file}",
                *self.args,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
        )
        deadline = time.monotonic() + timeout
        while not self.connection_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {self.log_text()[-3000:]}")
            time.sleep(0.1)
        self.info = json.loads(self.connection_file.read_text())
        return self

    def log_text(self) -> str:
        return (self.workdir / "server.log").read_text(errors="replace")

    def url(self, path: str) -> str:
        return f"{self.info['base_path']}/{path}"  # an absolute URL, as Positron uses it

    def call(
        self, method: str, path: str, body: Any = None, timeout: float = WAIT
    ) -> tuple[int, Any]:
        code, result = http_json(method, self.url(path), self.info["bearer_token"], body, timeout)
        if (
            isinstance(result, dict)
            and isinstance(result.get("process_id"), int)
            and "kernel_id" in result
        ):
            self.kernel_pids.add(result["process_id"])
        return code, result

    def ok(self, method: str, path: str, body: Any = None, timeout: float = WAIT) -> Any:
        code, result = self.call(method, path, body, timeout)
        assert code == 200, (method, path, code, result)
        return result

    def reattached(self, session_id: str, timeout: float = WAIT) -> dict:
        """The session's model once it has left `starting`: a restarted durable server lists
        its stored sessions at once and re-attaches their kernels after its handshake."""
        import time

        deadline = time.monotonic() + timeout
        while (model := self.ok("GET", f"sessions/{session_id}"))["status"] == "starting":
            assert time.monotonic() < deadline, f"{session_id} still starting: {model['reason']}"
            time.sleep(0.1)
        return model

    def stop(self, sig: int | None = None, timeout: float = WAIT) -> int:
        import signal as signals

        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig if sig is not None else signals.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.log.close()

    def cleanup(self) -> None:
        import os
        import signal as signals

        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid in self.kernel_pids:
            try:
                os.killpg(pid, signals.SIGKILL)
            except OSError:
                pass


def kernel_event(name: str):
    """A predicate: a supervisor event frame of the channels websocket named ``name``."""
    return lambda m: m.get("kind") == "kernel" and name in m
