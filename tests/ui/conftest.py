"""Fixtures of the browser tests: a real `jupyter lab` subprocess with session_ext and its
labextension, and Debian's chromium driven by Playwright (never a downloaded browser).

Every wait has a timeout: the server start (LAB_START_TIMEOUT), each Playwright action and
assertion (DEFAULT_TIMEOUT_MS), the shutdown (LAB_STOP_TIMEOUT); pytest-timeout bounds each
test as a whole (see the ``timeout`` marks of the tests).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time


from pathlib import Path
from typing import Any

import psutil
import pytest

from ..helpers import http_json

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts"  # git-ignored; screenshots, server log, browser console
CHROMIUM = os.environ.get("SESSION_EXT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
DEFAULT_TIMEOUT_MS = 30_000  # every Playwright action and expect()
LAB_START_TIMEOUT = 60.0  # seconds until /api/status answers
LAB_STOP_TIMEOUT = 20.0  # seconds for a graceful SIGTERM shutdown before SIGKILL
VIEWPORT = {"width": 1280, "height": 760}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """`jupyter lab` as a subprocess in its own process group, with its own runtime, config
    and data directories (so no user settings, workspace or stale state leaks in)."""

    def __init__(self, workdir: Path, disabled_extensions: tuple[str, ...] = (), args: tuple[str, ...] = ()):
        self.workdir = workdir
        self.disabled_extensions = disabled_extensions
        self.args = args  # more command line options of `jupyter lab`
        self.root_dir = workdir / "root"
        self.runtime_dir = workdir / "runtime"
        self.config_dir = workdir / "config"
        self.data_dir = workdir / "data"
        self.log_path = workdir / "jupyter-lab.log"
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.known: dict[int, psutil.Process] = {}  # every descendant seen: killed at the end

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LabServer:
        for d in (self.root_dir, self.runtime_dir, self.config_dir, self.data_dir):
            d.mkdir(parents=True, exist_ok=True)
        # No "Would you like to receive official Jupyter news?" toast over the status bar.
        settings = self.config_dir / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        if self.disabled_extensions:
            labconfig = self.config_dir / "labconfig"
            labconfig.mkdir(exist_ok=True)
            (labconfig / "page_config.json").write_text(
                json.dumps({"disabledExtensions": {name: True for name in self.disabled_extensions}})
            )
        own_path = {}
        own_build = HERE.parent.parent / "session_ext" / "labextension"
        if (own_build / "package.json").exists():
            # The labextension built from this checkout (a worktree's too), ahead of an
            # installed one: JUPYTER_PATH comes first in the labextensions path.
            linked = self.workdir / "own" / "labextensions" / "session-ext-labextension"
            linked.parent.mkdir(parents=True, exist_ok=True)
            if not linked.is_symlink():  # (a server started again on the same workdir)
                linked.symlink_to(own_build, target_is_directory=True)
            own_path["JUPYTER_PATH"] = os.pathsep.join(
                p for p in (str(self.workdir / "own"), os.environ.get("JUPYTER_PATH")) if p
            )
        env = {
            **os.environ,
            **own_path,
            "JUPYTER_RUNTIME_DIR": str(self.runtime_dir),
            "JUPYTER_CONFIG_DIR": str(self.config_dir),
            "JUPYTER_DATA_DIR": str(self.data_dir),
            "IPYTHONDIR": str(self.workdir / "ipython"),
        }
        jupyter = str(Path(sys.executable).with_name("jupyter"))
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                jupyter, "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
                f"--port={self.port}", "--ServerApp.port_retries=0",
                f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
                "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                *self.args,
            ],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=self.root_dir, start_new_session=True,
        )
        deadline = time.monotonic() + LAB_START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"jupyter lab exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                if self.call("GET", "/api/status", timeout=2)[0] == 200:
                    return self
            except OSError:  # not listening yet
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"jupyter lab did not answer /api/status:\n{self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def call(self, method: str, path: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
        """A REST call with the token; returns (status, JSON body or None)."""
        code, result = http_json(method, self.base_url + path, self.token, body, timeout)
        self.remember_children()
        return code, result

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        code, result = self.call(method, path, body)
        assert code == 200, (method, path, code, result)
        return result

    def remember_children(self) -> None:
        """Note the server's descendants (kernels run in their own sessions, and outlive a
        SIGKILLed server as orphans, so they are tracked while the server is alive)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            for p in psutil.Process(self.proc.pid).children(recursive=True):
                self.known.setdefault(p.pid, p)
        except psutil.Error:
            pass

    def leftovers(self) -> list[psutil.Process]:
        """Live processes this server started: descendants seen, plus anything whose command
        line names our runtime dir (kernels get their connection file there)."""
        found = {}
        for pid, p in self.known.items():
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    found[pid] = p
            except psutil.Error:
                pass
        marker = str(self.runtime_dir)
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                if marker in " ".join(p.info["cmdline"] or ()) and p.status() != psutil.STATUS_ZOMBIE:
                    found[p.pid] = p
            except psutil.Error:
                pass
        found.pop(os.getpid(), None)
        return list(found.values())

    def stop(self) -> None:
        """SIGTERM (jupyter lab shuts its kernels down), then SIGKILL whatever is left: the
        server's process group and every kernel it started."""
        if self.proc is None:  # never started
            return
        self.remember_children()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(LAB_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 5  # kernels exit shortly after a graceful shutdown
        while (left := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for p in left:
            try:
                if p.is_running() and os.getpgid(p.pid) == p.pid:  # a kernel and its children
                    os.killpg(p.pid, signal.SIGKILL)
                p.kill()
            except (OSError, psutil.Error):
                pass
        psutil.wait_procs(left, timeout=5)
        self.log.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def failed(request) -> bool:
    return any(
        getattr(request.node, f"report_{when}", None) is not None
        and getattr(request.node, f"report_{when}").failed
        for when in ("setup", "call")
    )


@pytest.fixture
def artifacts(request) -> Path:
    """tests/ui/artifacts/<test name>/ (emptied first)."""
    path = ARTIFACTS / request.node.name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# JupyterLab as users have it: nothing disabled (its debugger's control-channel requests
# right after connecting must not disturb the session's status).
DISABLED_LAB_EXTENSIONS: tuple[str, ...] = ()


@pytest.fixture
def lab(tmp_path, artifacts):
    """A running `jupyter lab`; stopped, with its kernels, at the end whatever happens."""
    server = LabServer(tmp_path, DISABLED_LAB_EXTENSIONS)
    try:
        yield server.start()
    finally:
        server.stop()
        if server.log_path.exists():
            shutil.copy(server.log_path, artifacts / "jupyter-lab.log")


@pytest.fixture
def sync_api():
    """playwright.sync_api, with expect()'s timeout set. Both it and chromium are part of
    the test set-up (`make test` installs them): missing is a failure, not a skip."""
    from playwright import sync_api as api

    assert os.access(CHROMIUM, os.X_OK), f"no chromium at {CHROMIUM} (make chromium)"
    api.expect.set_options(timeout=DEFAULT_TIMEOUT_MS)
    return api


@pytest.fixture
def page(sync_api, lab, artifacts, request):
    """A chromium page on /lab?token=…, the browser console logged to artifacts."""
    console: list[str] = []
    events: list[str] = []  # frames of the /supervisor/events websocket, as the page got them
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=DEFAULT_TIMEOUT_MS)
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.set_default_timeout(DEFAULT_TIMEOUT_MS)
            context.set_default_navigation_timeout(DEFAULT_TIMEOUT_MS)
            page = context.new_page()
            page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
            page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
            page.on("websocket", lambda ws: log_events(ws, events))
            page.goto(f"{lab.base_url}/lab?token={lab.token}")
            yield page
            if failed(request):
                try:
                    page.screenshot(path=artifacts / "failure.png", timeout=5_000)
                except Exception as e:  # noqa: BLE001 - best effort, keep the real failure
                    console.append(f"[test] failure screenshot failed: {e}")
                dump_server_state(lab, artifacts / "server-state.json")
        finally:
            (artifacts / "browser-console.log").write_text("\n".join(console) + "\n")
            (artifacts / "supervisor-events.log").write_text("\n".join(events) + "\n")
            browser.close()


def log_events(ws, events: list[str]) -> None:
    if "/supervisor/events" not in ws.url:
        return
    start = time.monotonic()

    def frame(direction):
        return lambda payload: events.append(f"{time.monotonic() - start:7.3f} {direction} {payload}")

    events.append(f"  0.000 open {ws.url.split('?')[0]}")
    ws.on("framereceived", frame("<"))
    ws.on("framesent", frame(">"))
    ws.on("close", lambda _ws: events.append(f"{time.monotonic() - start:7.3f} closed"))


def dump_server_state(lab: LabServer, path: Path) -> None:
    """What the server thought when a test failed (best effort)."""
    state = {}
    for url in ("/api/sessions", "/supervisor/sessions"):
        try:
            state[url] = lab.call("GET", url, timeout=5)
        except OSError as e:
            state[url] = repr(e)
    path.write_text(json.dumps(state, indent=1))

