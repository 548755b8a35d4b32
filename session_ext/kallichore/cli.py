"""``session-ext-kcserver``: Kallichore's ``kcserver`` command line, so that Positron can run
this supervisor in place of its Rust binary.

It takes exactly kcserver's flags (an unknown one is an error, exit status 1) and runs the same
server as ``jupyter session-ext`` (durable mode on, sessions persisted), configured from them:

- ``--token FILE``: the bearer token is FILE's content, trimmed (at most 64 characters); FILE is
  deleted once read (its path shows in the process list). ``none``: no authentication.
  Absent: a random token. The token never goes on a command line.
- ``--log-file F`` receives the server's log (0600); ``--log-level`` is mapped onto Python's
  levels (trace and debug → DEBUG, info, warn → WARNING, error), else ``RUST_LOG``, else info.
- ``--connection-file F`` and ``--handshake-socket P`` both deliver the server state
  (serverstate.py), the first as a file, the second over the client's unix socket.
- ``--transport tcp|socket`` (``named-pipe`` is Windows-only), ``--unix-socket P``,
  ``--socket-dir D``: over a unix socket the API is also answered at the root, and channels go
  through per-session sockets (unixchannels.py).
- ``--idle-shutdown-hours N`` (0 = 30 s of idleness), ``--resource-sample-interval MS``.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import secrets
import sys
import tempfile
from typing import NoReturn

from jupyter_core.paths import jupyter_runtime_dir
from traitlets.config import Config

from session_ext._version import __version__
from session_ext.core.config import LOG_LEVELS
from session_ext.core.private import open_private

TOKEN_MAX = 64
TRANSPORTS = ("tcp", "socket", "named-pipe")
DB_SLOTS = 16  # kcserver-<n>.db: one per concurrent server (one per Positron window)


class UsageError(Exception):
    pass


class KcArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parser() -> KcArgumentParser:
    p = KcArgumentParser(
        prog="session-ext-kcserver",
        allow_abbrev=False,
        description="A Kallichore-compatible kernel supervisor (session_ext) with kcserver's "
        "command line.",
    )
    p.add_argument("-p", "--port", type=int, default=0, help="TCP port (0: any free port)")
    p.add_argument(
        "-t",
        "--token",
        metavar="FILE",
        help="read the bearer token from FILE, then delete it; 'none': no auth",
    )
    p.add_argument("--log-file", metavar="F", help="also write the log to F")
    p.add_argument(
        "--connection-file", metavar="F", help="write the connection details to F once listening"
    )
    p.add_argument(
        "-i",
        "--idle-shutdown-hours",
        type=int,
        metavar="N",
        help="exit after N idle hours (0: after 30 s idle); absent: never",
    )
    p.add_argument(
        "-r",
        "--resource-sample-interval",
        type=int,
        default=1000,
        metavar="MS",
        help="resource sampling period in ms (0: off)",
    )
    p.add_argument("-l", "--log-level", choices=list(LOG_LEVELS), help="log level")
    p.add_argument("--socket-dir", metavar="D", help="where per-session unix sockets go")
    p.add_argument("--unix-socket", metavar="P", help="listen on this unix socket, not TCP")
    p.add_argument(
        "--transport",
        choices=TRANSPORTS,
        help="tcp or socket (default: socket with --connection-file, else tcp)",
    )
    p.add_argument(
        "--handshake-socket",
        metavar="P",
        help="connect to this unix socket once listening and write the connection details to it",
    )
    p.add_argument("-V", "--version", action="version", version=f"kcserver {__version__}")
    return p


def read_token(path: str | None) -> str:
    """The token of ``--token``: a file's trimmed content (the file is deleted), '' for none."""
    if path is None:
        return secrets.token_hex(16)
    if path == "none":
        return ""
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read the token file {path}: {e}") from None
    try:
        os.unlink(path)
    except OSError as e:
        raise UsageError(f"cannot delete the token file {path}: {e}") from None
    if not token:
        raise UsageError(f"the token file {path} is empty")
    if len(token) > TOKEN_MAX:
        raise UsageError(f"the token in {path} is longer than {TOKEN_MAX} characters")
    return token


def log_level(name: str | None) -> str:
    if name is None:
        env = os.environ.get("RUST_LOG", "").strip().lower()
        name = env if env in LOG_LEVELS else "info"
    return name


def default_socket_dir() -> str:
    return os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()


def free_db_path(runtime_dir: str) -> str:
    """The first kcserver database no other server holds (each Positron window runs its own
    supervisor; one server per database). Probed without keeping the lock: the server takes
    it for good when it opens the store, and says so if another one was faster."""
    os.makedirs(runtime_dir, exist_ok=True)
    for n in range(1, DB_SLOTS + 1):
        path = os.path.join(runtime_dir, f"session_ext-kcserver-{n}.db")
        fd = open_private(path + ".lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        finally:
            os.close(fd)  # releases the probe's lock
        return path
    raise UsageError(f"{DB_SLOTS} session_ext-kcserver databases in {runtime_dir} are in use")


def configure(args: argparse.Namespace) -> tuple[Config, list[str], str]:
    """The server's configuration from kcserver's flags: (config, jupyter argv, log level)."""
    if args.transport == "named-pipe":
        raise UsageError("the named-pipe transport is only available on Windows")
    transport = args.transport or ("socket" if args.connection_file or args.unix_socket else "tcp")
    if args.unix_socket and transport != "socket":
        raise UsageError("--unix-socket needs the socket transport")
    if transport == "socket" and args.port:
        raise UsageError("--port cannot be used with the socket transport")
    for flag, value in (
        ("--port", args.port),
        ("--resource-sample-interval", args.resource_sample_interval),
    ):
        if value < 0:
            raise UsageError(f"{flag} must not be negative")
    if args.idle_shutdown_hours is not None and not 0 <= args.idle_shutdown_hours <= 65535:
        raise UsageError("--idle-shutdown-hours must be between 0 and 65535")
    level = log_level(args.log_level)
    socket_dir = os.path.abspath(args.socket_dir or default_socket_dir())
    db_path = free_db_path(jupyter_runtime_dir())
    token = read_token(args.token)  # last: it deletes the file, so no check may fail after it

    c = Config()
    c.IdentityProvider.token = token
    if not token:
        c.ServerApp.disable_check_xsrf = True  # no token: nothing to protect with XSRF
    c.ServerApp.open_browser = False
    c.ServerApp.log_level = LOG_LEVELS[level]
    app = c.SessionExtApp
    app.keep_kernels_on_shutdown = True
    app.db_path = db_path
    app.resource_sample_interval_ms = args.resource_sample_interval
    app.idle_shutdown_hours = -1 if args.idle_shutdown_hours is None else args.idle_shutdown_hours
    app.log_path = os.path.abspath(args.log_file) if args.log_file else ""
    app.connection_file = os.path.abspath(args.connection_file) if args.connection_file else ""
    app.handshake_socket = args.handshake_socket or ""
    argv = ["--ip=127.0.0.1", "--no-browser"]
    if transport == "socket":
        sock = os.path.abspath(
            args.unix_socket or os.path.join(socket_dir, f"kc-{os.getpid()}.sock")
        )
        for directory in {socket_dir, os.path.dirname(sock)}:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        c.ServerApp.sock = sock
        app.serve_at_root = True
        app.channel_socket_dir = socket_dir
    else:
        argv.append(f"--port={args.port}")
        c.ServerApp.port_retries = 0
    if os.geteuid() == 0:
        argv.append("--allow-root")
    return c, argv, level


def add_log_file(loggers: list, path: str, level: str) -> None:
    """The server's log (jupyter_server's and ours) also goes to ``path``, created 0600."""
    stream = open(open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), "a", buffering=1)
    handler = logging.StreamHandler(stream)
    handler.setLevel(LOG_LEVELS[level])
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for logger in {*loggers, logging.getLogger("tornado")}:
        logger.addHandler(handler)


def main(argv: list[str] | None = None) -> None:
    from session_ext.app import SessionExtApp

    try:
        args = parser().parse_args(sys.argv[1:] if argv is None else argv)
        config, server_argv, level = configure(args)
    except UsageError as e:
        print(f"session-ext-kcserver: error: {e}", file=sys.stderr)
        print(
            "Run `session-ext-kcserver --help` for the flags it takes (kcserver's).",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    SessionExtApp.standalone = True
    serverapp = SessionExtApp.initialize_server(argv=server_argv, config=config)
    serverapp.no_browser_open_file = True  # jupyter_server's page holds the token; no browser here
    points = serverapp.extension_manager.extensions["session_ext"].extension_points.values()
    apps = [point.app for point in points]
    if args.log_file:
        add_log_file(
            [serverapp.log, *(app.log for app in apps)], os.path.abspath(args.log_file), level
        )
    for app in apps:
        app.supervisor.config.log_level = level  # what /server_configuration reports
    try:
        serverapp.start()
    finally:
        if serverapp.sock and os.path.exists(serverapp.sock):
            os.unlink(serverapp.sock)  # jupyter_server leaves its socket behind


if __name__ == "__main__":
    main()
