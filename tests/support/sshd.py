"""A private OpenSSH server for the remote-kernel tests: Debian's ``openssh-server`` binary,
run as the current user, bound to 127.0.0.2 on a free port, with its own host key, config and
authorized key, and a temporary HOME holding the client's key pair and known_hosts.

Nothing of the machine's own ssh configuration is read or changed (``sshd -f`` names our
config; /etc/ssh is not consulted). The one thing outside the temp dir: as root, sshd needs
its privilege-separation directory /run/sshd to exist (Debian's service creates it too).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"  # sshd re-executes itself: it must be started by its absolute path
HOST = "127.0.0.2"  # a loopback address of its own: gateway-provisioners takes it as remote
PRIVSEP_DIR = "/run/sshd"


class SshdUnavailable(Exception):
    """sshd genuinely cannot run here (the reason says why)."""


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def keygen(path: Path, comment: str) -> str:
    """An ed25519 key pair at ``path`` (no passphrase); the public key's line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    return path.with_suffix(".pub").read_text().strip()


class Sshd:
    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"  # the client's HOME: ~/.ssh/id_ed25519 and known_hosts
        self.bin = root / "bin"  # on the PATH of ssh logins only: programs only "the remote" has
        self.tmp = root / "tmp"  # the logins' TMPDIR
        self.user = getpass.getuser()
        self.host = HOST
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log_path = root / "sshd.log"

    def check(self) -> None:
        """Raise SshdUnavailable when this machine cannot run a private sshd."""
        if not os.access(SSHD, os.X_OK):
            raise SshdUnavailable(
                f"{SSHD} is not installed (Debian's openssh-server; `make test` installs it)"
            )
        if shutil.which("ssh-keygen") is None:
            raise SshdUnavailable("ssh-keygen is not installed (openssh-client)")
        try:
            free_port(HOST)
        except OSError as e:
            raise SshdUnavailable(f"cannot bind {HOST}: {e}") from None
        if os.geteuid() == 0 and not os.path.isdir(PRIVSEP_DIR):
            os.makedirs(PRIVSEP_DIR, mode=0o755)

    def start(self, timeout: float = 30) -> Sshd:
        self.check()
        ssh_dir = self.home / ".ssh"
        ssh_dir.mkdir(parents=True, mode=0o700)
        self.bin.mkdir()
        self.tmp.mkdir()
        host_key = self.root / "ssh_host_ed25519_key"
        host_public = keygen(host_key, "session_ext-test-host")
        client_public = keygen(ssh_dir / "id_ed25519", "session_ext-test-client")
        (self.root / "authorized_keys").write_text(client_public + "\n")
        for _attempt in range(5):  # the free port may be taken before sshd binds it
            self.port = free_port(HOST)
            (ssh_dir / "known_hosts").write_text(f"[{HOST}]:{self.port} {host_public}\n")
            self._write_config(host_key)
            self.log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
                stdout=self.log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            if self._wait_listening(timeout):
                return self
            self.stop()
        raise SshdUnavailable(f"sshd did not start: {self.log_text()[-2000:]}")

    def _write_config(self, host_key: Path) -> None:
        lines = [
            f"ListenAddress {HOST}:{self.port}",
            f"HostKey {host_key}",
            f"PidFile {self.root / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            f"AllowUsers {self.user}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            # Our files live under the world-writable temp dir, and PAM is the machine's.
            "StrictModes no",
            "UsePAM no",
            "PrintMotd no",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            # The login's HOME and TMPDIR are ours (the shell's rc files are not the
            # machine's), and its PATH has a directory the local machine's has not.
            f"SetEnv HOME={self.home} TMPDIR={self.tmp}"
            f" PATH={self.bin}:/usr/local/bin:/usr/bin:/bin",
            "LogLevel VERBOSE",
        ]
        (self.root / "sshd_config").write_text("\n".join(lines) + "\n")

    def _wait_listening(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def run(self, command: str, timeout: float = 30) -> str:
        """Run ``command`` over ssh (OpenSSH's client, our HOME's key and known_hosts only)."""
        ssh_dir = self.home / ".ssh"
        result = subprocess.run(
            [
                "ssh",
                "-F",
                "none",
                "-p",
                str(self.port),
                "-i",
                str(ssh_dir / "id_ed25519"),
                "-o",
                f"UserKnownHostsFile={ssh_dir / 'known_hosts'}",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                f"{self.user}@{HOST}",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "HOME": str(self.home)},
        )
        if result.returncode != 0:
            raise SshdUnavailable(
                f"ssh {self.user}@{HOST}:{self.port} failed ({result.returncode}): "
                f"{result.stderr.strip()}\n{self.log_text()[-2000:]}"
            )
        return result.stdout

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None:
            self.log.close()
