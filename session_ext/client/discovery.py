"""Finding a supervisor to talk to.

In order: what the caller gives (a URL and token, or a connection file); the environment
(``SESSION_EXT_URL`` + ``SESSION_EXT_TOKEN``, or ``SESSION_EXT_CONNECTION_FILE``); else the
running servers of this user: jupyter_server's ``jpserver-<pid>.json`` files in the Jupyter
runtime directory (every ``jupyter lab``, ``jupyter server`` and ``jupyter session-ext``
writes one), each asked for ``GET /supervisor/status`` — those without session_ext do not
answer it. Of several, the one whose root directory holds the current directory (the
deepest), else the newest.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from jupyter_core.paths import jupyter_runtime_dir

from session_ext.client.errors import ClientError, ServerNotFound

URL_ENV = "SESSION_EXT_URL"
TOKEN_ENV = "SESSION_EXT_TOKEN"
CONNECTION_FILE_ENV = "SESSION_EXT_CONNECTION_FILE"
API_PREFIX = "supervisor"
PROBE_TIMEOUT = 3.0


@dataclass(frozen=True)
class Endpoint:
    """Where a supervisor's API answers: ``api_url`` (e.g.
    ``http://127.0.0.1:8888/supervisor``) and its token; over a unix socket ``socket_path``
    is set and ``api_url``'s host is a placeholder."""

    api_url: str
    token: str = ""
    source: str = "given"
    root_dir: str | None = None
    pid: int | None = None
    socket_path: str | None = None
    mtime: float = 0.0

    @property
    def ws_url(self) -> str:
        return "ws" + self.api_url[len("http") :]

    @property
    def server_url(self) -> str:
        """The jupyter_server's own base (the API without its prefix)."""
        return self.api_url.rsplit("/", 1)[0] + "/"

    def describe(self) -> str:
        where = f"unix socket {self.socket_path}" if self.socket_path else self.api_url
        return f"{where} ({self.source})"


def from_url(url: str, token: str = "", source: str = "given") -> Endpoint:
    """A server's URL: its API (``.../supervisor``) or the jupyter_server's base URL."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ClientError(f"Not an http(s) URL: {url!r}")
    if not url.endswith("/" + API_PREFIX):
        url = f"{url}/{API_PREFIX}"
    return Endpoint(api_url=url, token=token, source=source)


def from_connection_file(path: str | os.PathLike[str]) -> Endpoint:
    """Kallichore's server state (``jupyter session-ext --connection-file F``,
    ``session-ext-kcserver``): ``base_path`` over TCP, ``socket_path`` over a unix socket."""
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ClientError(f"Cannot read the connection file {path}: {e}") from None
    token = state.get("bearer_token") or ""
    source = f"connection file {path}"
    if state.get("transport") == "socket" and state.get("socket_path"):
        return Endpoint(
            api_url=f"http://localhost/{API_PREFIX}",
            token=token,
            source=source,
            pid=state.get("server_pid"),
            socket_path=state["socket_path"],
        )
    if not state.get("base_path"):
        raise ClientError(f"The connection file {path} has no base_path nor socket_path")
    return replace(from_url(state["base_path"], token, source), pid=state.get("server_pid"))


def from_jpserver_file(path: str | os.PathLike[str]) -> Endpoint | None:
    """A ``jpserver-<pid>.json`` of a live process, else None."""
    try:
        info = json.loads(Path(path).read_text())
        mtime = os.stat(path).st_mtime
    except (OSError, ValueError):
        return None
    pid = info.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        return None
    common = {
        "token": info.get("token") or "",
        "source": f"{Path(path).name}",
        "root_dir": info.get("root_dir"),
        "pid": pid,
        "mtime": mtime,
    }
    base = (info.get("base_url") or "/").strip("/")
    prefix = f"/{base}" if base else ""
    if info.get("sock"):
        return Endpoint(
            api_url=f"http://localhost{prefix}/{API_PREFIX}", socket_path=info["sock"], **common
        )
    url = info.get("url")
    if not url:
        return None
    return Endpoint(api_url=url.rstrip("/") + "/" + API_PREFIX, **common)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def candidates(runtime_dir: str | None = None) -> list[Endpoint]:
    """The live jupyter servers of this user, newest first (not yet asked anything)."""
    directory = runtime_dir or jupyter_runtime_dir()
    found = [
        endpoint
        for path in glob.glob(os.path.join(directory, "jpserver-*.json"))
        if (endpoint := from_jpserver_file(path)) is not None
    ]
    return sorted(found, key=lambda e: e.mtime, reverse=True)


def http_transport(endpoint: Endpoint, sync: bool) -> Any:
    if endpoint.socket_path is None:
        return None
    cls = httpx.HTTPTransport if sync else httpx.AsyncHTTPTransport
    return cls(uds=endpoint.socket_path)


def auth_headers(endpoint: Endpoint) -> dict[str, str]:
    return {"Authorization": f"Bearer {endpoint.token}"} if endpoint.token else {}


def probe(endpoint: Endpoint, timeout: float = PROBE_TIMEOUT) -> dict[str, Any] | None:
    """``GET /status`` of a candidate: its status if it runs session_ext, else None."""
    try:
        with httpx.Client(
            transport=http_transport(endpoint, sync=True),
            headers=auth_headers(endpoint),
            timeout=timeout,
        ) as http:
            response = http.get(endpoint.api_url + "/status")
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) and "server_id" in body else None


def find_servers(runtime_dir: str | None = None) -> list[tuple[Endpoint, dict[str, Any]]]:
    """Every running server of this user that has the supervisor, with its status."""
    return [(e, status) for e in candidates(runtime_dir) if (status := probe(e)) is not None]


def choose(found: list[Endpoint], cwd: str | None = None) -> Endpoint:
    """The server whose root directory holds ``cwd`` (the deepest one), else the newest."""
    here = os.path.realpath(cwd or os.getcwd())

    def depth(endpoint: Endpoint) -> int:
        root = os.path.realpath(endpoint.root_dir) if endpoint.root_dir else None
        if root and (here == root or here.startswith(root.rstrip(os.sep) + os.sep)):
            return len(root)
        return -1

    return max(found, key=lambda e: (depth(e), e.mtime))


def resolve(
    url: str | None = None,
    token: str | None = None,
    connection_file: str | None = None,
    runtime_dir: str | None = None,
) -> Endpoint:
    """The server to use: given, from the environment, else discovered (ServerNotFound)."""
    if connection_file:
        return from_connection_file(connection_file)
    if url:
        return from_url(url, token if token is not None else os.environ.get(TOKEN_ENV, ""))
    if os.environ.get(CONNECTION_FILE_ENV):
        return from_connection_file(os.environ[CONNECTION_FILE_ENV])
    if os.environ.get(URL_ENV):
        return from_url(
            os.environ[URL_ENV],
            token if token is not None else os.environ.get(TOKEN_ENV, ""),
            source=f"${URL_ENV}",
        )
    found = [endpoint for endpoint, _ in find_servers(runtime_dir)]
    if not found:
        where = runtime_dir or jupyter_runtime_dir()
        raise ServerNotFound(
            f"No running Jupyter server with session_ext found (looked in {where}): start one "
            "with `jupyter lab` or `jupyter session-ext`, or give --url and --token"
        )
    chosen = choose(found)
    return replace(chosen, token=token) if token else chosen


def ws_path(endpoint: Endpoint, path: str) -> str:
    return f"{endpoint.ws_url}/{path}"


def quoted(session_id: str) -> str:
    return quote(session_id, safe="")
