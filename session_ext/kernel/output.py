"""The kernel process's own stdout and stderr (not its Jupyter messages).

They go to two files beside the connection file rather than to pipes: a file outlives the
server (a durable kernel never writes into a closed pipe), works for any local provisioner
(they take Popen's stdout/stderr; a remote one keeps the output where the kernel runs), and is
read back in small chunks on the supervisor's tick.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from session_ext.core.private import open_private

STREAMS = ("stdout", "stderr")
MAX_STARTUP_OUTPUT = 64 * 1024


class ProcessOutput:
    def __init__(self, prefix: str, on_line: Callable[[str, str], None]):
        self._on_line = on_line
        self.paths = {name: f"{prefix}.{name}" for name in STREAMS}
        # The kernel writes through these; kept open so a restart can reuse them.
        self._writers = {
            name: os.fdopen(open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "ab")
            for name, path in self.paths.items()
        }
        self._readers = {name: open(path, "rb") for name, path in self.paths.items()}
        for reader in self._readers.values():
            reader.seek(0, os.SEEK_END)
        self._partial = {name: b"" for name in STREAMS}
        self._captured: list[bytes] = []
        self._captured_size = 0

    @property
    def stdout(self):
        return self._writers["stdout"]

    @property
    def stderr(self):
        return self._writers["stderr"]

    def poll(self) -> None:
        """Read what the kernel wrote since the last poll; one callback per complete line."""
        for name, reader in self._readers.items():
            if reader.closed:
                continue
            data = reader.read()
            if not data:
                continue
            if self._captured_size < MAX_STARTUP_OUTPUT:
                self._captured.append(data)
                self._captured_size += len(data)
            data = self._partial[name] + data
            *lines, self._partial[name] = data.split(b"\n")
            for line in lines:
                self._on_line(name, line.decode(errors="replace") + "\n")

    def read_all(self) -> str:
        """Everything written so far (clipped), for a StartupError."""
        self.poll()
        for name in STREAMS:
            if self._partial[name]:
                self._on_line(name, self._partial[name].decode(errors="replace"))
                self._partial[name] = b""
        return b"".join(self._captured)[:MAX_STARTUP_OUTPUT].decode(errors="replace")

    def detach(self) -> None:
        """The server stops but the kernel lives on (durable mode): keep the files."""
        for f in (*self._writers.values(), *self._readers.values()):
            f.close()

    def close(self) -> None:
        """The kernel has gone: its output files go too."""
        self.detach()
        for path in self.paths.values():
            try:
                os.unlink(path)
            except OSError:
                pass
