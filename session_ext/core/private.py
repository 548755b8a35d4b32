"""Files that hold secrets (kernel keys, the token, what a kernel prints) are 0600 from
their creation, whatever the umask: never created readable and chmod'ed after a window."""

from __future__ import annotations

import os


def open_private(path: str, flags: int) -> int:
    """``os.open`` with mode 0600; an existing file is made 0600 too. A file descriptor."""
    fd = os.open(path, flags | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return fd
