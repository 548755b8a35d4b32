"""Every touch of another package's internals (jupyter_server, jupyter_client, tornado; for
the MCP server uvicorn and the mcp SDK), in one place.

Each is here because no public API does the job; each says why and which versions it was
checked against (jupyter_server 2.14 - 2.21.1, jupyter_client 8.6 - 8.10, tornado 6.2 - 6.6).
Upgrading one of them means reading this file first.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

# utcnow lives in a private module; it is what jupyter_server itself stamps activity with.
from jupyter_server._tz import utcnow

if TYPE_CHECKING:
    from asyncio import Future

    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import KernelManager
    from jupyter_server.gateway.connections import GatewayWebSocketConnection
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from tornado.iostream import IOStream
    from tornado.web import RequestHandler
    from tornado.websocket import WebSocketProtocol
    from uvicorn import Config, Server


def set_kernel_spec(km: KernelManager, kernel_spec: KernelSpec) -> None:
    """Launch ``km`` from an in-memory kernelspec (the session's argv, interrupt mode, names).

    ``KernelManager.kernel_spec`` reads its ``_kernel_spec`` cache before asking the kernelspec
    manager, and a session's kernelspec is not installed anywhere."""
    km._kernel_spec = kernel_spec


def channel_url(km: KernelManager, channel: str) -> str:
    """The ZeroMQ URL of one of the kernel's channels (``ConnectionFileMixin._make_url``): our
    iopub socket needs options ``connect_iopub`` does not take, and the heartbeat is ours."""
    return km._make_url(channel)


def register_kernel(
    multi_kernel_manager: MappingKernelManager, kernel_id: str, km: KernelManager
) -> None:
    """Make a kernel we started visible in /api/kernels, so JupyterLab can attach to it.

    jupyter_server has no public call to add an already-started kernel; this does what its
    ``MappingKernelManager.start_kernel`` does after launching (its ``_kernels``,
    ``_kernel_connections`` and ``_kernel_ports`` dicts)."""
    mkm = multi_kernel_manager
    mkm._kernels[kernel_id] = km
    mkm._kernel_connections.setdefault(kernel_id, 0)
    mkm._kernel_ports[kernel_id] = km.ports
    km.execution_state = "idle"
    km.reason = ""
    km.last_activity = utcnow()
    # No mkm.start_watching_activity: a second subscriber decoding every message cost a third
    # of the server's time on iopub; the session reports activity instead (record_activity).


def reported_starting(km: KernelManager) -> bool:
    """Whether jupyter_server still reports its kernel as `starting` (the ``execution_state``
    its MappingKernelManager keeps on the kernel manager, until a status message arrives)."""
    return getattr(km, "execution_state", None) == "starting"


def unregister_kernel(multi_kernel_manager: MappingKernelManager, kernel_id: str) -> None:
    """Take a kernel of ours out of /api/kernels without shutting it down (it exited, or
    durable mode keeps it running past the server)."""
    mkm = multi_kernel_manager
    if kernel_id not in mkm._kernels:
        return
    mkm.stop_watching_activity(kernel_id)
    mkm._kernels.pop(kernel_id, None)
    mkm._kernel_connections.pop(kernel_id, None)
    mkm._kernel_ports.pop(kernel_id, None)


def record_activity(
    multi_kernel_manager: MappingKernelManager, km: KernelManager, execution_state: str
) -> None:
    """What jupyter_server's activity watcher would record, for /api/kernels and its
    no-activity shutdown: the kernel's busy/idle and when it last changed."""
    km.execution_state = execution_state
    km.last_activity = multi_kernel_manager.last_kernel_activity = utcnow()


def websocket_compressed(connection: WebSocketProtocol) -> bool:
    """Whether permessage-deflate was negotiated (``WebSocketProtocol13._compressor``): our
    batched writes build uncompressed frames themselves."""
    return getattr(connection, "_compressor", None) is not None


def bytes_written(stream: IOStream) -> int:
    """How many bytes were ever given to ``IOStream.write`` (``_total_write_index``)."""
    return stream._total_write_index


def bytes_sent(stream: IOStream) -> int:
    """How many of them the socket took (``_total_write_done_index``): when a connection
    dies, what tornado still held never left the server and can go to the next client."""
    return stream._total_write_done_index


def user_identified(handler: RequestHandler) -> bool:
    """Whether jupyter_server's identity provider knew the requester (JupyterHandler.prepare
    keeps it in ``_jupyter_current_user``; ``current_user`` itself would fall back to
    tornado's cookie lookup): an unknown one is answered 401, a refused known one 403."""
    return bool(getattr(handler, "_jupyter_current_user", None))


def response_finished(handler: RequestHandler) -> bool:
    """Whether tornado already sent the response (``RequestHandler._finished``)."""
    return handler._finished


# --- the MCP listener (uvicorn 0.31 - 0.54, mcp 2.3) ---------------------------------------


def uvicorn_server(config: Config) -> Server:
    """A uvicorn server that runs inside the server's event loop without taking its signals:
    ``Server.serve`` installs SIGINT/SIGTERM handlers (``capture_signals``) and, when it
    returns, re-raises the signals it caught; jupyter_server's own handlers must stay."""
    import contextlib

    import uvicorn

    class LoopServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            yield

    return LoopServer(config)


def mcp_session_open(manager: StreamableHTTPSessionManager, mcp_session_id: str) -> bool:
    """Whether the MCP SDK's session manager still serves this MCP session
    (``StreamableHTTPSessionManager._server_instances``): it ends sessions on its own (idle
    timeout, a crash), and an agent listed as connected must be one it still serves."""
    return mcp_session_id in getattr(manager, "_server_instances", {mcp_session_id: None})


def gateway_provisioners_nonblocking() -> None:
    """Let gateway-provisioners' sockets wait on the event loop rather than block it.

    Its ResponseManager accepts the remote launchers' connection info with ``sock_accept``
    on a socket with a timeout (``GP_SOCKET_TIMEOUT``, default 0.01 s), in a tornado
    PeriodicCallback that runs again as soon as it returns: with the default the server's
    event loop is blocked about 10 ms out of every 10 ms once a remote kernel was started
    (measured here: GET /status 1.5 ms -> 33 ms). With 0 the socket is non-blocking, which
    is what asyncio's ``sock_accept``/``sock_connect`` expect, and they wait without
    blocking. Read once when gateway-provisioners is imported (at the first remote kernel),
    so set before; a value the user set is kept. Checked against gateway-provisioners 0.5.0.
    """
    if "GP_SOCKET_TIMEOUT" in os.environ:
        return
    if "gateway_provisioners.config_mixin" in sys.modules:
        logging.getLogger(__name__).warning(
            "gateway-provisioners was imported before session_ext could set "
            "GP_SOCKET_TIMEOUT=0: its response socket blocks the event loop (set it yourself)"
        )
        return
    os.environ["GP_SOCKET_TIMEOUT"] = "0"


def gateway_provisioner_reaps_in_background(provisioner: Any, grace: float) -> None:
    """Let a gateway-provisioners provisioner's ``wait`` not block the event loop.

    ``RemoteProvisionerBase.wait`` calls ``self.local_proc.wait()``, a blocking Popen.wait,
    when it runs a process here: the kernel itself for ``DistributedProvisioner`` with
    ``localhost`` (or another address of this machine) among its hosts, the launcher for the
    others. jupyter_client calls ``wait`` once the provisioner's poll says the kernel has
    gone, which DistributedProvisioner says as soon as it has stopped the launcher's
    listener, so jupyter_client never signals the kernel itself; and ipykernel 7 under
    gateway-provisioners' launcher does not exit after a shutdown request here (it spins
    polling its closed stdin): the server froze for good. Now a process still running is
    reaped on a daemon thread, ended as jupyter_client ends a local kernel that does not
    exit (SIGTERM after ``grace``/2 s, SIGKILL after ``grace``), and ``wait`` returns at
    once, as it does for a kernel on another host. Replaces the instance's ``wait`` (once).
    Checked against gateway-provisioners 0.5.0.
    """
    module = sys.modules.get("gateway_provisioners.remote_provisioner")
    base = getattr(module, "RemoteProvisionerBase", None)
    if base is None or not isinstance(provisioner, base) or "wait" in vars(provisioner):
        return
    wait = provisioner.wait

    async def reap_in_background() -> int | None:
        process = provisioner.local_proc
        if process is None:
            return await wait()  # polls the listener: it waits without blocking
        code = process.poll()
        if code is None:
            reaper = threading.Thread(target=_end, args=(process, grace), daemon=True)
            reaper.start()
        return code

    provisioner.wait = reap_in_background


def _end(process: subprocess.Popen, grace: float) -> None:
    for stop in (process.terminate, process.kill):
        try:
            process.wait(grace / 2)
            return
        except subprocess.TimeoutExpired:
            stop()
    process.wait()


# --- a server whose kernels are a gateway's (jupyter_server's GatewayWebSocketConnection) ---


def close_gateway_socket_connected_late(
    connection: GatewayWebSocketConnection, fut: Future
) -> None:
    """After ``GatewayWebSocketConnection._connection_done``: close the websocket to the
    gateway if its client left while it was connecting.

    ``disconnect`` cannot cancel a pending ``websocket_connect`` (tornado futures ignore
    ``cancel``), and ``_connection_done`` then drops the connected websocket without closing
    it: the gateway keeps a stale connection under the client's session id, which races the
    client's next one (jupyter_server 2.21.1)."""
    if connection.disconnected and not fut.cancelled() and fut.exception() is None:
        fut.result().close()
