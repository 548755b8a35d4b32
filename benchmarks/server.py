"""One real ``jupyter session-ext`` subprocess on a free loopback port, and its cleanup.

Everything the benchmark starts (the server, every kernel) is stopped in ``cleanup()``,
which is safe to call more than once and from an exception or Ctrl-C path.
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
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil

API = "supervisor"


def _die_with_parent() -> None:
    """In the child: SIGTERM when the benchmark process dies, however it dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SupervisorServer:
    def __init__(
        self,
        extra_args: list[str] | None = None,
        keep_dir: bool = False,
        launcher: str | None = None,
    ):
        self.token = secrets.token_hex(24)
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="session_ext_bench_"))
        self.keep_dir = keep_dir
        self.extra_args = list(extra_args or [])
        # A Python script run instead of `jupyter session-ext` (same arguments): for trying
        # a change to the server (a monkeypatch) without editing session_ext.
        self.launcher = launcher
        self.proc: subprocess.Popen | None = None
        # Every kernel seen (psutil handles notice a reused pid), killed at the end if alive.
        self.kernels: dict[int, psutil.Process] = {}
        self._log = None
        self._cleaned = False

    # --- process -----------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def start(self, timeout: float = 60) -> None:
        if self.launcher:
            command = [sys.executable, self.launcher]
        else:
            command = [str(Path(sys.executable).with_name("jupyter")), "session-ext"]
        env = {
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(self.workdir / "runtime"),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("JUPYTER_TOKEN", None)
        args = [
            *command,
            f"--port={self.port}",
            "--ip=127.0.0.1",
            "--allow-root",
            "--no-browser",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.workdir}",
            # Stock jupyter_server drops iopub beyond 1000 msg/s by default; a transport
            # benchmark needs every message delivered on the stock path too.
            "--ZMQChannelsWebsocketConnection.limit_rate=False",
            # Standalone servers keep kernels when they stop (durable mode); the benchmark
            # wants a SIGTERM to the server to take its kernels down with it.
            "--SessionExtApp.keep_kernels_on_shutdown=False",
            *self.extra_args,
        ]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.workdir,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                code, _ = self.call("GET", f"/{API}/status", timeout=2)
                if code == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # --- HTTP --------------------------------------------------------------------------

    def call(
        self, method: str, path: str, body: Any = None, timeout: float = 60
    ) -> tuple[int, Any]:
        data = (
            json.dumps(body).encode()
            if body is not None
            else (b"" if method in ("POST", "PUT") else None)
        )
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                code, raw = response.status, response.read()
        except urllib.error.HTTPError as e:
            code, raw = e.code, e.read()
        try:
            result = json.loads(raw) if raw else None
        except ValueError:
            result = raw.decode(errors="replace")
        return code, result

    def ok(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        code, result = self.call(method, path, body, timeout)
        if not 200 <= code < 300:
            raise RuntimeError(f"{method} {path} -> {code}: {result}")
        return result

    # --- kernels -----------------------------------------------------------------------

    def start_session(
        self, session_id: str, kernel_name: str = "python3", **fields: Any
    ) -> dict[str, Any]:
        """Create and start a supervisor session; returns its model (kernel_id, process_id)."""
        body = {"session_id": session_id, "kernel_name": kernel_name, **fields}
        self.ok("PUT", f"/{API}/sessions", body)
        for attempt in range(3):
            # A kernel can lose the race for the ports jupyter_client picked for it (another
            # process took one meanwhile): the start fails, and a second one usually works.
            code, result = self.call("POST", f"/{API}/sessions/{session_id}/start", timeout=120)
            self._note_kernels()
            if code == 200:
                break
            if attempt == 2:
                raise RuntimeError(f"starting session {session_id} failed ({code}): {result}")
            print(f"starting {session_id} failed ({code}); retrying", file=sys.stderr)
        model = self.ok("GET", f"/{API}/sessions/{session_id}")
        if isinstance(model.get("process_id"), int):
            self._note(model["process_id"])
        return model

    def connection_info(self, session_id: str) -> dict[str, Any]:
        return self.ok("GET", f"/{API}/sessions/{session_id}/connection_info")

    def start_plain_kernel(self, kernel_name: str = "python3") -> tuple[str, int | None]:
        """A kernel started the stock way (POST /api/kernels), not a supervisor session."""
        before = self._children()
        try:
            model = self.ok("POST", "/api/kernels", {"name": kernel_name}, timeout=120)
        finally:
            self._note_kernels()
        new = [p for p in self._children() if p not in before]
        return model["id"], (new[0] if len(new) == 1 else None)

    def _children(self) -> set[int]:
        try:
            return {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}
        except (psutil.Error, AttributeError):
            return set()

    def _note(self, pid: int) -> None:
        if pid not in self.kernels:
            try:
                self.kernels[pid] = psutil.Process(pid)
            except psutil.Error:
                pass

    def _note_kernels(self) -> None:
        for pid in self._children():
            self._note(pid)

    # --- cleanup -----------------------------------------------------------------------

    def cleanup(self) -> None:
        """Stop every kernel and the server, whatever state they are in."""
        if self._cleaned:
            return
        self._cleaned = True
        proc = self.proc
        if proc is not None and proc.poll() is None:
            self._note_kernels()
            # Plain kernels first, then the supervisor's own shutdown (its sessions' kernels,
            # then the standalone server exits).
            try:
                for k in self.ok("GET", "/api/kernels", timeout=5) or []:
                    self.call("DELETE", f"/api/kernels/{k['id']}", timeout=15)
            except Exception:
                pass
            try:
                self.call("POST", f"/{API}/shutdown", timeout=30)
            except Exception:
                pass
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        for p in self.kernels.values():
            try:
                if p.is_running():
                    p.kill()
                    p.wait(5)
            except (psutil.Error, OSError):
                pass
        if self._log is not None:
            self._log.close()
            self._log = None
        if not self.keep_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
