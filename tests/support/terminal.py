"""A real terminal for command-line tests: tmux on a server socket of its own (never the
user's), a shell without rc files, the command under test on its PATH as `session-ext`;
reading the screen with capture-pane, typing with send-keys. Closing it (kill-server)
hangs the terminal up, as closing a terminal window does."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from .helpers import WAIT

REPO = Path(__file__).resolve().parents[2]


def cli_command() -> list[str]:
    """`session-ext` as this checkout runs it (the console script once installed)."""
    return [sys.executable, "-m", "session_ext.client.cli"]


def install_cli(bin_dir: Path) -> Path:
    """A `session-ext` executable running this checkout's command line."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "session-ext"
    script.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={shlex.quote(str(REPO))}${{PYTHONPATH:+:$PYTHONPATH}} "
        f'exec {shlex.quote(sys.executable)} -m session_ext.client.cli "$@"\n'
    )
    script.chmod(0o755)
    return script


class Terminal:
    def __init__(self, workdir: Path, env: dict[str, str] | None = None, width: int = 160):
        self.workdir = workdir
        self.socket = f"session-ext-test-{uuid.uuid4().hex[:8]}"
        bin_dir = workdir / "bin"
        install_cli(bin_dir)
        self.env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": os.environ.get("HOME", str(workdir)),
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
            "PS1": "$ ",
            **(env or {}),
        }
        self.width = width
        self.open = False

    def tmux(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=WAIT,
            check=check,
        )
        return result.stdout

    def start(self) -> Terminal:
        env_args = [arg for k, v in self.env.items() for arg in ("-e", f"{k}={v}")]
        self.tmux(
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            str(self.width),
            "-y",
            "50",
            "-c",
            str(self.workdir),
            *env_args,
            "env -i "
            + " ".join(shlex.quote(f"{k}={v}") for k, v in self.env.items())
            + " bash --norc --noprofile",
        )
        self.open = True
        self.wait_for(lambda screen: "$" in screen)
        return self

    def type(self, text: str, enter: bool = True) -> None:
        self.tmux("send-keys", "-t", "0", "-l", text)
        if enter:
            self.tmux("send-keys", "-t", "0", "Enter")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "0", *keys)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-t", "0", "-S", "-2000")

    def wait_for(self, predicate: Callable[[str], bool] | str, timeout: float = WAIT) -> str:
        """The screen once it shows ``predicate`` (a text, or a test of the screen)."""
        test = (lambda s: predicate in s) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if test(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"the terminal never showed it; it shows:\n{screen}")
            time.sleep(0.05)

    def close(self) -> None:
        """Hang up: tmux's server goes, with the shell and what runs in it."""
        if self.open:
            self.tmux("kill-server", check=False)
            self.open = False
