"""A kernel coming up, by a deadline: its process started through jupyter_client and its
provisioner (or jupyter_server's kernel ready), our connection to it, then the kernel_info
handshake (handshake.py) while its process is watched.

Each step raises ``StartupFailed`` with a KS code; KernelProcess then leaves nothing behind
(no process, no sockets) and raises StartupError with what the process printed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future as ConcurrentFuture
from typing import TYPE_CHECKING, Any

import zmq
from jupyter_client.session import Session
from jupyter_core.utils import ensure_async

from session_ext.core import internals
from session_ext.core.errors import (
    EXITED_ABNORMALLY,
    PROCESS_START_FAILED,
    ZMQ_CONNECT_TIMEOUT,
    StartupError,
)
from session_ext.kernel import provisioning
from session_ext.kernel.connection import KernelConnection
from session_ext.kernel.handshake import KernelInfoHandshake
from session_ext.wire.messages import KernelMessage, make_message

if TYPE_CHECKING:
    from jupyter_client.manager import KernelManager
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager


class StartupFailed(Exception):
    def __init__(self, code: str, message: str, exit_code: int | None = None):
        super().__init__(code, message, exit_code)
        self.code = code
        self.message = message
        self.exit_code = exit_code


def remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.1)


async def start_process(
    km: KernelManager,
    kernel_id: str,
    cwd: str,
    env: dict[str, str],
    popen: dict[str, Any],
    deadline: float,
) -> None:
    """``km.start_kernel`` within the deadline (``popen``: Popen's arguments, for a local
    process only)."""
    try:
        await asyncio.wait_for(
            ensure_async(km.start_kernel(env=env, cwd=cwd, kernel_id=kernel_id, **popen)),
            remaining(deadline),
        )
    except Exception as e:
        why = str(e) or type(e).__name__  # (a timeout says nothing)
        raise StartupFailed(PROCESS_START_FAILED, f"The kernel could not be launched: {why}") from e


def message_session(km: KernelManager, username: str, session_id: str | None) -> Session:
    """Our message session with the kernel (its key); ``session_id``: an earlier server's
    (durable mode), so our sockets have its ZeroMQ identity and the kernel's replies to its
    requests reach us."""
    reused = {"session": session_id} if session_id else {}
    return Session(
        key=km.session.key,
        signature_scheme=km.session.signature_scheme,
        username=username,
        **reused,
    )


async def connect(
    km: KernelManager, session: Session, on_message: Callable[[KernelMessage], None]
) -> KernelConnection:
    try:
        return KernelConnection(km, session, on_message)
    except zmq.ZMQError as e:
        raise StartupFailed(ZMQ_CONNECT_TIMEOUT, f"Could not connect to the kernel: {e}") from e


async def server_kernel(
    mkm: MappingKernelManager, kernel_id: str, wanted: Callable[[], bool]
) -> KernelManager | None:
    """The kernel manager of a kernel jupyter_server started (or restarted), once it is
    ready (a pending kernel has no ports yet) and once a client has talked to it:
    jupyter_server reports a kernel nobody has talked to as `starting` (its clients' nudge
    makes it idle), and our handshake must not be the first to talk, or /api/kernels would
    say what stock never says. None once no longer ``wanted``."""
    try:
        km = mkm.get_kernel(kernel_id)
        ready = km.ready  # jupyter_client's: asyncio's or concurrent.futures' Future
        await (asyncio.wrap_future(ready) if isinstance(ready, ConcurrentFuture) else ready)
    except Exception as e:
        raise StartupError(
            PROCESS_START_FAILED, f"jupyter_server could not start the kernel: {e}", None, ""
        ) from None
    while wanted() and internals.reported_starting(km):  # noqa: ASYNC110 (jupyter_server's flag: no event to wait on)
        await asyncio.sleep(0.1)
    return km if wanted() else None


async def handshake(
    km: KernelManager,
    conn: KernelConnection,
    handshake: KernelInfoHandshake,
    channel: str,
    deadline: float,
    timeout: float,
    kill_on_timeout: bool,
) -> bool:
    """kernel_info_request on ``channel`` until the reply and an iopub message arrive
    (jupyter_server's "nudge"), failing if the process exits or, with ``kill_on_timeout``,
    once the deadline (``timeout`` s after the start) has passed. False if a kernel that must
    not be killed did not answer in time."""

    def request() -> str:
        msg = make_message(conn.session, channel, "kernel_info_request", {})
        conn.send(channel, msg)
        return msg["header"]["msg_id"]

    async def give_up() -> bool:
        if km.has_kernel and not await ensure_async(km.is_alive()):
            code = provisioning.exit_code(km)  # (a remote provisioner's poll says 0)
            raise StartupFailed(
                EXITED_ABNORMALLY, f"The kernel exited during startup (code {code})", code
            )
        if time.monotonic() > deadline:
            if not kill_on_timeout:
                return True
            raise StartupFailed(
                ZMQ_CONNECT_TIMEOUT, f"The kernel did not answer within {timeout} s"
            )
        return False

    return await handshake.run(request, give_up)
