"""The jupyter_server extension: configuration traits, routes, start and stop.

Loaded into any jupyter_server (``jupyter lab``, ``jupyter server``), or run headless as
``jupyter session-ext`` (like kernel_gateway), the standalone supervisor.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
from typing import ClassVar

from jupyter_core.paths import jupyter_runtime_dir
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from tornado.ioloop import IOLoop
from traitlets import Bool, Enum, Float, Int, Unicode, default

from session_ext._version import __version__
from session_ext.api import mcp as mcp_handlers
from session_ext.api import rest, websocket
from session_ext.api.notebook_run import NotebookRunHandler
from session_ext.core import internals
from session_ext.core.config import SupervisorConfig
from session_ext.integration import hooks
from session_ext.integration.mirror import JupyterSessions
from session_ext.kallichore.server_state import send_handshake, server_state, write_connection_file
from session_ext.kallichore.unix_channels import ChannelSockets
from session_ext.mcp.server import McpService
from session_ext.store.database import SessionStore, StoreError
from session_ext.supervisor.events import EventBus
from session_ext.supervisor.notebook_runs import NotebookRuns
from session_ext.supervisor.registry import Supervisor

SESSION = r"(?P<session_id>[^/]+)"


class SessionExtApp(ExtensionApp):
    """A kernel supervisor in jupyter_server, with Kallichore's API."""

    name = "session_ext"
    description = "A kernel supervisor for jupyter_server with a Kallichore-compatible API"
    version = __version__
    load_other_extensions = False  # `jupyter session-ext` runs just the supervisor
    serverapp_config: ClassVar[dict] = {"open_browser": False}  # headless
    aliases: ClassVar[dict] = {"connection-file": "SessionExtApp.connection_file"}

    # Set by launch_instance: this process is the standalone `jupyter session-ext`.
    standalone = False

    api_prefix = Unicode(
        "supervisor", config=True, help="Path under the server's base_url where the API lives."
    )
    db_path = Unicode(
        config=True,
        help="SQLite file where sessions are persisted (':memory:' turns persistence off); "
        "one server per file (a second one refuses to start). Default: in durable mode "
        "session_ext.db in the Jupyter runtime directory, else ':memory:' (so that several "
        "`jupyter lab` servers of one user each have their own).",
    )

    @default("db_path")
    def _default_db_path(self):
        if self.keep_kernels_on_shutdown:
            return os.path.join(jupyter_runtime_dir(), "session_ext.db")
        return ":memory:"

    keep_kernels_on_shutdown = Bool(
        config=True,
        help="Durable mode: kernels outlive the server process and are re-adopted when it "
        "starts again. Default: on for `jupyter session-ext`, off inside another app.",
    )

    @default("keep_kernels_on_shutdown")
    def _default_keep_kernels(self):
        return self.standalone

    connection_file = Unicode(
        "",
        config=True,
        help="Write a Kallichore-style connection file here once the server listens.",
    )
    handshake_socket = Unicode(
        "",
        config=True,
        help="Once listening, connect to this unix socket, write the server state (as in the "
        "connection file) as one JSON document and close (Positron's handshake).",
    )
    log_path = Unicode(
        "", config=True, help="The server's log file, reported as log_path in the server state."
    )
    channel_socket_dir = Unicode(
        "",
        config=True,
        help="Kallichore's socket transport: a plain GET (no upgrade) of a session's channels "
        "answers the path of a per-session unix socket created in this directory, which speaks "
        "the channels websocket protocol. Empty: off (a plain GET is a 400).",
    )
    serve_at_root = Bool(
        False,
        config=True,
        help="Also answer the Kallichore paths (/status, /sessions, ...) at the server's root, "
        "as a Kallichore client on a unix socket expects; they stay under api_prefix too.",
    )
    buffer_max_messages = Int(
        10_000, config=True, help="Messages kept for a session while no client is attached."
    )
    buffer_max_bytes = Int(
        64 * 1024 * 1024, config=True, help="Bytes kept for a session while no client is attached."
    )
    heartbeat_interval = Float(2.0, config=True, help="Seconds between kernel heartbeat pings.")
    heartbeat_timeout = Float(
        5.0, config=True, help="Seconds without a heartbeat answer before a session is offline."
    )
    shutdown_wait = Float(
        5.0,
        config=True,
        help="Seconds a shutdown or restart waits for the kernel to exit before killing it.",
    )
    resource_sample_interval_ms = Int(
        1000, config=True, help="Milliseconds between resource usage samples (0 = off)."
    )
    cull_idle_timeout = Float(
        0, config=True, help="Shut down sessions idle for this many seconds (0 = never)."
    )
    cull_busy_timeout = Float(
        0, config=True, help="Shut down sessions busy for this many seconds (0 = never)."
    )
    cull_connected = Bool(
        False, config=True, help="Also cull sessions that have a client attached."
    )
    idle_shutdown_hours = Int(
        -1,
        config=True,
        help="Standalone only: stop the server after this many hours with no busy or "
        "connected session and no live heartbeat client (-1 = never).",
    )
    max_sessions = Int(0, config=True, help="Most sessions at once (0 = unlimited).")
    allow_argv = Enum(
        ["any", "kernelspecs-only"],
        "any",
        config=True,
        help="Which argv a NewSession may run: any program, or only installed kernelspecs.",
    )
    history_size = Int(1000, config=True, help="Execution history entries kept per session.")
    max_cell_output_bytes = Int(
        2 * 1024 * 1024,
        config=True,
        help="Outputs kept of a notebook cell's latest execution (bytes of JSON); past it the "
        "oldest go and a marker output says how many.",
    )
    max_notebook_output_bytes = Int(
        32 * 1024 * 1024,
        config=True,
        help="Outputs kept of all the cells of one notebook session (bytes of JSON); past it "
        "the oldest cells' outputs go first.",
    )
    max_body_bytes = Int(
        4 * 1024 * 1024, config=True, help="Largest request body accepted (bytes); 413 past it."
    )

    mcp_port = Int(
        0,
        config=True,
        help="Port of the MCP server for agents on 127.0.0.1 when a workspace does not ask "
        "for one (0: any free port). It listens while any MCP workspace is registered.",
    )
    mcp_jupyter_workspace = Bool(
        config=True,
        help="Make jupyter_server's notebooks and consoles an MCP workspace ('jupyter'), so "
        "agents can run code in them (the Kernel Sessions panel shows its URL). Default: on "
        "inside another app (JupyterLab), off for `jupyter session-ext`.",
    )

    @default("mcp_jupyter_workspace")
    def _default_mcp_jupyter_workspace(self):
        return not self.standalone

    mcp_max_output_chars = Int(
        20000,
        config=True,
        help="Most characters of text an MCP tool result carries (the head and the tail of "
        "the output are kept, the middle is left out and said so).",
    )
    mcp_max_image_bytes = Int(
        4 * 1024 * 1024,
        config=True,
        help="Most bytes (base64) of images one MCP execute_code result carries; images past "
        "it are named in the text instead.",
    )

    @classmethod
    def launch_instance(cls, argv=None, **kwargs):
        cls.standalone = True
        super().launch_instance(argv=argv, **kwargs)

    def _link_jupyter_server_extension(self, serverapp):
        """Linking runs before the server builds its session manager and websocket
        connections: put the supervisor's hooks on the classes it is configured with."""
        super()._link_jupyter_server_extension(serverapp)
        hooks.install(serverapp)

    def supervisor_config(self) -> SupervisorConfig:
        server = self.serverapp
        return SupervisorConfig(
            runtime_dir=server.runtime_dir,
            server_root=os.path.abspath(os.path.expanduser(server.root_dir)),
            username=getpass.getuser(),
            # Without persistence nobody could re-adopt a kernel left running: never leave one.
            keep_kernels_on_shutdown=self.keep_kernels_on_shutdown and self.db_path != ":memory:",
            buffer_max_messages=self.buffer_max_messages,
            buffer_max_bytes=self.buffer_max_bytes,
            heartbeat_interval=self.heartbeat_interval,
            heartbeat_timeout=self.heartbeat_timeout,
            shutdown_wait=self.shutdown_wait,
            history_size=self.history_size,
            max_cell_output_bytes=self.max_cell_output_bytes,
            max_notebook_output_bytes=self.max_notebook_output_bytes,
            max_sessions=self.max_sessions,
            allow_argv=self.allow_argv,
            resource_sample_interval_ms=self.resource_sample_interval_ms,
            idle_shutdown_hours=self.idle_shutdown_hours,
            cull_idle_timeout=self.cull_idle_timeout,
            cull_busy_timeout=self.cull_busy_timeout,
            cull_connected=self.cull_connected,
            secrets=tuple(t for t in (server.identity_provider.token,) if t),
            gateway_url=hooks.gateway_url(server),
        )

    def initialize_settings(self):
        # The package's module loggers ("session_ext.*") write through this app's log.
        logging.getLogger("session_ext").parent = self.log
        internals.gateway_provisioners_nonblocking()  # before any remote kernel is started
        self.events = EventBus()
        store = SessionStore(self.db_path, self.history_size)
        try:
            store.open()  # before the server serves anything
        except StoreError as e:
            self.log.critical("%s", e.message)
            raise SystemExit(1) from None  # the extension manager would log and go on
        self.supervisor = Supervisor(
            self.supervisor_config(), self.serverapp.kernel_manager, self.events, store
        )
        self.jupyter_sessions = JupyterSessions(self.supervisor)
        hooks.connect(self.serverapp, self.jupyter_sessions, self.settings)
        self.notebook_runs = NotebookRuns(self.supervisor, self.events)
        self.mcp = McpService(
            self.supervisor,
            store,
            port=self.mcp_port,
            max_output_chars=self.mcp_max_output_chars,
            max_image_bytes=self.mcp_max_image_bytes,
            secrets=self.supervisor.config.secrets,
        )
        self.channel_sockets = None
        if self.channel_socket_dir:
            self.channel_sockets = ChannelSockets(
                self.channel_socket_dir, self.serverapp.identity_provider.token
            )
        IOLoop.current().add_callback(self._on_server_started)

    def initialize_handlers(self):
        prefix = url_path_join("/", self.api_prefix)
        routes = [
            ("status", rest.StatusHandler),
            ("sessions", rest.SessionsHandler),
            ("shutdown", rest.ShutdownHandler),
            ("client_heartbeat", rest.ClientHeartbeatHandler),
            ("server_configuration", rest.ServerConfigurationHandler),
            ("openapi.yaml", rest.OpenAPIHandler),
            ("events", websocket.EventsHandler),
            ("mcp/workspaces", mcp_handlers.McpWorkspacesHandler),
            (r"mcp/workspaces/(?P<workspace_id>[^/]+)", mcp_handlers.McpWorkspaceHandler),
            (r"mcp/workspaces/(?P<workspace_id>[^/]+)/channel", mcp_handlers.McpChannelHandler),
        ]
        session_routes = [
            ("", rest.SessionHandler),
            ("start", rest.StartHandler),
            ("restart", rest.RestartHandler),
            ("interrupt", rest.InterruptHandler),
            ("kill", rest.KillHandler),
            ("adopt", rest.AdoptHandler),
            ("connection_info", rest.ConnectionInfoHandler),
            ("execute", rest.ExecuteHandler),
            ("history", rest.HistoryHandler),
            ("cells", rest.CellsHandler),
            ("notebook_run", NotebookRunHandler),
            ("queue", rest.QueueHandler),
            ("queue/(?P<msg_id>[^/]+)", rest.QueuedRequestHandler),
            ("channels", websocket.ChannelsHandler),
        ]
        for base in [prefix] + (["/"] if self.serve_at_root else []):
            session = url_path_join(base, "sessions", SESSION)
            self.handlers.extend((url_path_join(base, path), h) for path, h in routes)
            self.handlers.extend(
                (url_path_join(session, path) if path else session, h) for path, h in session_routes
            )
        self.handlers.append((url_path_join(prefix, "(.*)"), rest.NotFoundHandler))

    async def _on_server_started(self):
        """Runs once the IOLoop is running (the server is listening). The stored sessions are
        listed before the server state goes out, their kernels re-attached after it: a
        client's handshake never waits for kernels (busy ones may take long to answer)."""
        try:
            await self.supervisor.restore()
        except Exception:  # the server serves (and ticks) anyway
            self.log.exception("Restoring the stored sessions failed")
        try:
            await self.mcp.restore(self.mcp_jupyter_workspace)
        except Exception:  # the supervisor serves anyway, without agents
            self.log.exception("Starting the MCP server failed")
        if self.standalone:
            self.supervisor.housekeeping.on_idle_timeout = self.shutdown_requested_by_idleness
        self.supervisor.start()
        await self.publish_state()
        self.supervisor.reattach_restored()

    def server_state(self) -> dict:
        """What a Kallichore client needs to reach this server (serverstate.py)."""
        server = self.serverapp
        return server_state(
            ip=server.ip,
            port=server.port,
            sock=server.sock,
            api_path=url_path_join(server.base_url, self.api_prefix),
            token=server.identity_provider.token,
            server_id=self.supervisor.server_id,
            log_path=self.log_path or None,
        )

    async def publish_state(self) -> None:
        """The connection file and the handshake. A server whose handshake fails stops: the
        client that launched it can never learn its token."""
        state = self.server_state()
        where = ""
        try:
            if self.connection_file:
                where = f"Writing the connection file {self.connection_file}"
                write_connection_file(self.connection_file, state)
            if self.handshake_socket:
                where = f"Handshake on {self.handshake_socket}"
                await send_handshake(self.handshake_socket, state)
        except (OSError, asyncio.TimeoutError) as e:  # (not TimeoutError's subclass on 3.10)
            self.log.critical("%s failed: %s", where, e)
            if self.standalone:
                self.serverapp.exit(1)

    def shutdown_requested(self) -> None:
        """POST /shutdown: the kernels are down; the standalone server stops too."""
        if self.standalone:
            IOLoop.current().call_later(0.1, self.serverapp.stop)

    def shutdown_requested_by_idleness(self) -> None:
        """idle_shutdown_hours passed with nothing going on: shut kernels down and stop."""

        async def stop():
            await self.supervisor.shutdown_all()
            self.serverapp.stop()

        IOLoop.current().add_callback(stop)

    async def stop_extension(self):
        await self.mcp.stop()
        if self.channel_sockets is not None:
            self.channel_sockets.close_all()
        await self.jupyter_sessions.stop()
        await self.supervisor.stop(keep_kernels=self.supervisor.config.keep_kernels_on_shutdown)


main = launch_new_instance = SessionExtApp.launch_instance
