import os
import signal
import time

import psutil
import pytest
from jupyter_server.serverapp import ServerApp

from .support.helpers import Api, OpenAPI, StandaloneServer, server_config

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config():
    return server_config()


@pytest.fixture(scope="session")
def openapi():
    return OpenAPI.load()


@pytest.fixture
def api(jp_serverapp, http_server_client, jp_auth_header, jp_base_url, jp_http_port, openapi):
    """The supervisor API of an in-process jupyter_server; every JSON response is checked
    against session_ext/openapi.yaml."""
    return Api(http_server_client, jp_auth_header, jp_base_url, jp_http_port, openapi)


@pytest.fixture
def server(tmp_path):
    """`jupyter session-ext` as a subprocess (started by the test); killed, with every kernel
    it reported, at the end."""
    srv = StandaloneServer(tmp_path)
    yield srv
    srv.cleanup()


@pytest.fixture
def extension(jp_serverapp):
    """The loaded SessionExtApp."""
    for point in jp_serverapp.extension_manager.extensions["session_ext"].extension_points.values():
        return point.app
    raise LookupError("session_ext is not loaded")


@pytest.fixture
def supervisor(extension):
    return extension.supervisor


def kernel_processes(exclude=()):
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.pid in exclude or p.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(p.cmdline())
        except psutil.Error:  # gone, or a zombie: not running
            continue
        if "ipykernel" in cmdline or "kernel-" in cmdline:
            found.append(p)
    return found


@pytest.fixture(autouse=True)
def jp_server_cleanup(jp_asyncio_loop):
    """pytest-jupyter's server cleanup, then a check that every kernel the test started is
    gone (this replaces the plugin's fixture so the check runs after the server stopped)."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    app = ServerApp.instance()
    try:
        jp_asyncio_loop.run_until_complete(app._cleanup())
    except (RuntimeError, SystemExit) as e:
        print("ignoring cleanup error", e)
    if hasattr(app, "kernel_manager"):
        app.kernel_manager.context.destroy()
    ServerApp.clear_instance()
    leaked = []
    for _ in range(50):
        leaked = kernel_processes(exclude=before)
        if not leaked:
            return
        time.sleep(0.1)
    for p in leaked:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
    pytest.fail(f"kernel processes left behind: {[p.pid for p in leaked]}")


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """One `jupyter session-ext` subprocess for a module's tests (``supervisor_server``
    empties it after each test); every kernel stops with it."""
    srv = StandaloneServer(tmp_path_factory.mktemp("standalone")).start(timeout=60)
    yield srv
    srv.call("POST", "shutdown")  # durable mode keeps kernels over a SIGTERM: stop them first
    srv.stop()
    srv.cleanup()


@pytest.fixture
def supervisor_server(standalone):
    """The module's server; the sessions a test made are deleted (their kernels stopped)
    at its end."""
    yield standalone
    for session in standalone.ok("GET", "sessions")["sessions"]:
        standalone.call("DELETE", f"sessions/{session['session_id']}?force=true", timeout=60)
