"""`session-ext-kcserver` as a real subprocess, launched the way Positron launches kcserver:
a handshake socket listened on before the launch, a token file, a log file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

from .helpers import WAIT

KCSERVER = [sys.executable, "-m", "session_ext.kallichore.cli"]


def positron_argv(hs: Path, token_file: Path, log_file: Path, transport: str = "tcp") -> list[str]:
    """Newest Positron's command line (KallichoreAdapterApi.start)."""
    return [
        "--token",
        str(token_file),
        "--log-level",
        "warn",
        "--log-file",
        str(log_file),
        "--handshake-socket",
        str(hs),
        "--resource-sample-interval",
        "1000",
        "--transport",
        transport,
    ]


class HandshakeListener:
    """What Positron does first: listen on a unix socket in a 0700 directory (socket 0600)."""

    def __init__(self, directory: Path):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = directory / "s.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self.sock.listen(1)

    def payload(self, proc: subprocess.Popen, timeout: float = WAIT) -> dict:
        """The one JSON document the server writes (to EOF), or AssertionError."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.2)
        while True:
            try:
                conn, _ = self.sock.accept()
                break
            except TimeoutError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "the server never connected to the handshake socket"
                    ) from None
        conn.settimeout(timeout)
        data = b""
        with conn:
            while chunk := conn.recv(65536):
                data += chunk
        return json.loads(data)

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)  # (Positron's next launch listens there again)


class KcServer:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.token = uuid.uuid4().hex
        self.token_file = workdir / "token"
        self.log_file = workdir / "kallichore.log"
        self.out = workdir / "kcserver.out.log"
        self.runtime_dir = workdir / "runtime"
        self.socket_dir = workdir / "socks"
        self.proc: subprocess.Popen | None = None
        self.state: dict = {}

    def env(self) -> dict:
        return {
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(self.runtime_dir),
            "XDG_RUNTIME_DIR": str(self.socket_dir),
        }

    def launch(self, args: list[str]) -> subprocess.Popen:
        with open(self.out, "ab") as out:
            self.proc = subprocess.Popen(
                KCSERVER + args,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env(),
                cwd=self.workdir,
            )
        return self.proc

    def start_like_positron(self, transport: str = "tcp", timeout: float = WAIT) -> dict:
        """Launched as Positron launches kcserver; the handshake's payload within
        ``timeout`` seconds (Positron's own limit is 10)."""
        self.token_file.write_text(f"  {self.token}\n")
        listener = HandshakeListener(self.workdir / "hs")
        try:
            self.launch(positron_argv(listener.path, self.token_file, self.log_file, transport))
            self.state = listener.payload(self.proc, timeout)
        except AssertionError:
            raise AssertionError(f"no handshake; output: {self.output()[-3000:]}") from None
        finally:
            listener.close()
        return self.state

    def output(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def wait(self, timeout: float = WAIT) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def cleanup(self) -> None:
        """Kill the server and every kernel it started (durable kernels are its grandchildren
        only until it exits: find them by their connection files' directory too)."""
        if self.proc is None:
            return
        kernels = []
        try:
            kernels = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for p in kernels:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                try:
                    p.kill()
                except psutil.Error:
                    pass
