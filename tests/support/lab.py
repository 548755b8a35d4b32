"""A Jupyter server as a real subprocess (`jupyter lab`, `jupyter server` or `jupyter
session-ext`), in its own process group with its own runtime, config and data directories;
every process it started is killed at the end."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from .helpers import http_json

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LAB_START_TIMEOUT = 60.0  # seconds until /api/status answers
LAB_STOP_TIMEOUT = 20.0  # seconds for a graceful SIGTERM shutdown before SIGKILL
LAB_QUIET = (
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """`jupyter lab` (or ``app``: `jupyter server`, `jupyter session-ext`) as a subprocess in
    its own process group, with its own runtime, config and data directories (so no user
    settings, workspace or stale state leaks in)."""

    def __init__(
        self,
        workdir: Path,
        disabled_extensions: tuple[str, ...] = (),
        args: tuple[str, ...] = (),
        app: str = "lab",
        port: int | None = None,
    ):
        self.workdir = workdir
        self.app = app
        self.disabled_extensions = disabled_extensions
        self.args = args  # more command line options of `jupyter lab`
        self.root_dir = workdir / "root"
        self.runtime_dir = workdir / "runtime"
        self.config_dir = workdir / "config"
        self.data_dir = workdir / "data"
        self.log_path = workdir / "jupyter-lab.log"
        self.token = secrets.token_hex(16)
        self.port = port or free_port()
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
                json.dumps(
                    {"disabledExtensions": {name: True for name in self.disabled_extensions}}
                )
            )
        own_path = {}
        own_build = REPO / "session_ext" / "labextension"
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
                jupyter,
                self.app,
                "--no-browser",
                "--allow-root",
                "--ip=127.0.0.1",
                f"--port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root_dir}",
                *(LAB_QUIET if self.app == "lab" else ()),
                *self.args,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.root_dir,
            start_new_session=True,
        )
        deadline = time.monotonic() + LAB_START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"jupyter {self.app} exited ({self.proc.returncode}):\n{self.log_tail()}"
                )
            try:
                if self.call("GET", "/api/status", timeout=2)[0] == 200:
                    return self
            except OSError:  # not listening yet
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"jupyter {self.app} did not answer /api/status:\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def call(
        self, method: str, path: str, body: Any = None, timeout: float = 10
    ) -> tuple[int, Any]:
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
                if (
                    marker in " ".join(p.info["cmdline"] or ())
                    and p.status() != psutil.STATUS_ZOMBIE
                ):
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


# A kernel gateway as `jupyter lab --gateway-url` uses one: a stock `jupyter server` (session_ext
# is installed here, so it is switched off) or `jupyter session-ext`.
GATEWAYS = {
    "stock": ("server", ("--ServerApp.jpserver_extensions=session_ext=False",)),
    "session_ext": ("session-ext", ()),
}


@contextlib.contextmanager
def running_gateway(kind: str, workdir: Path):
    app, args = GATEWAYS[kind]
    server = LabServer(workdir, app=app, args=args)
    try:
        yield server.start()
    finally:
        server.stop()


def gateway_args(gateway: LabServer) -> tuple[str, ...]:
    """The command line options of a server whose kernels are ``gateway``'s."""
    return (f"--gateway-url={gateway.base_url}", f"--GatewayClient.auth_token={gateway.token}")
