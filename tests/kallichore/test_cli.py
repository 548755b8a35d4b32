"""`session-ext-kcserver`: kcserver's command line, the server state it delivers (handshake
socket, connection file), the token file, the log file, both transports."""

import argparse
import base64
import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import time

import psutil
import pytest

from session_ext.kallichore import cli as kcserver
from session_ext.kallichore.cli import UsageError, configure, parser, read_token

from ..support.helpers import WAIT, http_json
from ..support.kcserver import KCSERVER, KcServer


@pytest.fixture
def kc(tmp_path):
    server = KcServer(tmp_path)
    yield server
    server.cleanup()


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    monkeypatch.delenv("RUST_LOG", raising=False)
    return tmp_path


def parse(*argv: str) -> argparse.Namespace:
    return parser().parse_args(list(argv))


# --- the command line ------------------------------------------------------------------


@pytest.mark.parametrize(
    "short,long",
    [("-p", "--port"), ("-i", "--idle-shutdown-hours"), ("-r", "--resource-sample-interval")],
)
def test_short_and_long_numeric_flags(short, long):
    dest = long[2:].replace("-", "_")
    assert getattr(parse(short, "7"), dest) == 7 and getattr(parse(long, "7"), dest) == 7


def test_every_kcserver_flag_is_taken(runtime):
    token_file = runtime / "t"
    token_file.write_text("abc\n")
    args = parse(
        "-p",
        "0",
        "-t",
        str(token_file),
        "--log-file",
        "L",
        "--connection-file",
        "C",
        "-i",
        "2",
        "-r",
        "250",
        "-l",
        "debug",
        "--socket-dir",
        str(runtime / "sd"),
        "--transport",
        "tcp",
        "--handshake-socket",
        "H",
    )
    config, argv, level = configure(args)
    app = config.SessionExtApp
    assert config.IdentityProvider.token == "abc" and not token_file.exists()
    assert app.idle_shutdown_hours == 2 and app.resource_sample_interval_ms == 250
    assert app.log_path == os.path.abspath("L") and app.connection_file == os.path.abspath("C")
    assert app.handshake_socket == "H" and app.keep_kernels_on_shutdown is True
    assert app.db_path.endswith("session_ext-kcserver-1.db")
    assert level == "debug" and config.ServerApp.log_level == "DEBUG"
    assert "--port=0" in argv and "--ip=127.0.0.1" in argv
    assert "sock" not in config.ServerApp and "serve_at_root" not in app
    assert parse("--token", "none").token == "none" and parse("-l", "warn").log_level == "warn"


def test_defaults_and_log_level_mapping(runtime, monkeypatch):
    config, _argv, level = configure(parse())
    assert level == "info" and config.ServerApp.log_level == "INFO"
    assert len(config.IdentityProvider.token) == 32  # absent: a random token
    assert config.SessionExtApp.idle_shutdown_hours == -1
    assert config.SessionExtApp.resource_sample_interval_ms == 1000
    for name, python in [
        ("trace", "DEBUG"),
        ("debug", "DEBUG"),
        ("info", "INFO"),
        ("warn", "WARN"),
        ("error", "ERROR"),
    ]:
        assert configure(parse("-l", name))[0].ServerApp.log_level == python
    monkeypatch.setenv("RUST_LOG", "error")
    assert configure(parse())[2] == "error"


def test_socket_transport_configuration(runtime):
    config, _argv, _ = configure(
        parse("--transport", "socket", "--socket-dir", str(runtime / "sd"))
    )
    assert config.ServerApp.sock == str(runtime / "sd" / f"kc-{os.getpid()}.sock")
    assert config.SessionExtApp.serve_at_root and config.SessionExtApp.channel_socket_dir
    assert stat.S_IMODE(os.stat(runtime / "sd").st_mode) == 0o700
    # a connection file without --transport means the socket transport (kcserver's default)
    assert configure(parse("--connection-file", "C"))[0].ServerApp.sock
    unix = configure(parse("--unix-socket", str(runtime / "u.sock")))[0]
    assert unix.ServerApp.sock == str(runtime / "u.sock")
    # XDG_RUNTIME_DIR is the default socket dir
    assert configure(parse("--transport", "socket"))[0].ServerApp.sock.startswith(
        str(runtime / "xdg")
    )


def test_token_file(tmp_path):
    path = tmp_path / "tok"
    path.write_text("  tok-123 \n")
    assert read_token(str(path)) == "tok-123" and not path.exists()  # deleted once read
    assert read_token("none") == ""
    path.write_text("x" * 65)
    with pytest.raises(UsageError, match="longer than 64"):
        read_token(str(path))
    path.write_text("x" * 64)
    assert read_token(str(path)) == "x" * 64
    path.write_text("  \n")
    with pytest.raises(UsageError, match="empty"):
        read_token(str(path))
    with pytest.raises(UsageError, match="cannot read"):
        read_token(str(tmp_path / "absent"))


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--port"], "expected one argument"),
        (["--port", "x"], "invalid int value"),
        (["--transport", "carrier-pigeon"], "invalid choice"),
        (["--transport", "named-pipe"], "only available on Windows"),
        (["--log-level", "loud"], "invalid choice"),
        (["--transport", "socket", "--port", "8000"], "--port cannot be used"),
        (["-r", "-5"], "must not be negative"),
        (["--idle-shutdown-hours", "70000"], "between 0 and 65535"),
        (["--ServerApp.port=1"], "unrecognized arguments"),  # not jupyter's options either
        (["--port=1", "--log"], "unrecognized arguments: --log"),  # no abbreviations
    ],
)
def test_bad_command_lines_exit_1_with_a_clear_error(argv, message, runtime, capsys):
    with pytest.raises(SystemExit) as info:
        kcserver.main(argv)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("session-ext-kcserver: error:") and message in err, err


def test_unknown_flag_from_the_command_line(tmp_path):
    result = subprocess.run(
        [*KCSERVER, "--frobnicate", "1"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path)},
    )
    assert result.returncode == 1 and "unrecognized arguments: --frobnicate" in result.stderr
    help_ = subprocess.run([*KCSERVER, "--help"], capture_output=True, text=True, timeout=WAIT)
    assert help_.returncode == 0
    for flag in (
        "--port",
        "--token",
        "--log-file",
        "--connection-file",
        "--idle-shutdown-hours",
        "--resource-sample-interval",
        "--log-level",
        "--socket-dir",
        "--unix-socket",
        "--transport",
        "--handshake-socket",
    ):
        assert flag in help_.stdout


def test_installed_console_script(tmp_path):
    script = shutil.which("session-ext-kcserver", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("session-ext-kcserver is not installed in this environment (reinstall)")
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=WAIT)
    assert result.returncode == 0 and "kcserver" in result.stdout


# --- launched as Positron launches it ----------------------------------------------------


def test_tcp_launch_like_positron(kc):
    state = kc.start_like_positron("tcp")
    assert not kc.token_file.exists()  # deleted once read
    assert set(state) == {
        "port",
        "base_path",
        "server_path",
        "server_pid",
        "bearer_token",
        "server_id",
        "log_path",
        "transport",
    }
    assert state["transport"] == "tcp" and state["bearer_token"] == kc.token
    assert state["base_path"] == f"http://127.0.0.1:{state['port']}/supervisor"  # absolute
    assert state["server_pid"] == kc.proc.pid and state["log_path"] == str(kc.log_file)
    base = state["base_path"]
    code, status = http_json("GET", f"{base}/status", kc.token)
    assert code == 200 and status["server_id"] == state["server_id"]
    code, error = http_json("GET", f"{base}/sessions", "stale-token")
    assert code == 401 and error["code"] == "unauthorized"
    code, config = http_json("GET", f"{base}/server_configuration", kc.token)
    assert config == {
        "idle_shutdown_hours": -1,
        "resource_sample_interval_ms": 1000,
        "log_level": "warn",
    }
    assert stat.S_IMODE(os.stat(kc.log_file).st_mode) == 0o600
    assert http_json("POST", f"{base}/shutdown", kc.token)[0] == 200
    assert kc.wait() == 0
    log = kc.log_file.read_text()
    assert "401 GET /supervisor/sessions" in log  # a warning: at the warn level it is there
    assert " INFO " not in log and kc.token not in log


def test_a_new_server_has_a_new_server_id_and_a_connection_file(kc, tmp_path):
    first = kc.start_like_positron("tcp")
    http_json("POST", f"{first['base_path']}/shutdown", kc.token)
    kc.wait()
    connection_file = tmp_path / "connection.json"
    kc.token_file.write_text(kc.token)
    kc.launch(
        [
            "-t",
            str(kc.token_file),
            "--connection-file",
            str(connection_file),
            "--transport",
            "tcp",
            "-p",
            "0",
        ]
    )
    deadline = time.monotonic() + WAIT
    while not connection_file.exists():
        assert kc.proc.poll() is None and time.monotonic() < deadline, kc.output()[-2000:]
        time.sleep(0.1)
    state = json.loads(connection_file.read_text())
    assert stat.S_IMODE(os.stat(connection_file).st_mode) == 0o600
    assert state["server_id"] != first["server_id"] and state["base_path"].startswith("http://")
    assert state["log_path"] is None
    assert (
        http_json("GET", f"{state['base_path']}/status", kc.token)[1]["server_id"]
        == state["server_id"]
    )
    http_json("POST", f"{state['base_path']}/shutdown", kc.token)
    assert kc.wait() == 0


def unix_http(path: str, method: str, target: str, token: str, body=None) -> tuple[int, object]:
    """HTTP/1.1 over a unix socket, as axios with `socketPath` does it."""
    data = json.dumps(body).encode() if body is not None else b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(WAIT)
        s.connect(path)
        s.sendall(
            f"{method} {target} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
            f"{token}\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
            + data
        )
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload) if payload else None


def ws_frame(payload: bytes, mask: bool) -> bytes:
    key = os.urandom(4) if mask else b""
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if mask else payload
    n = len(payload)
    length = (
        struct.pack("!BH", (0x80 if mask else 0) | 126, n)
        if n > 125
        else struct.pack("!B", (0x80 if mask else 0) | n)
    )
    return b"\x81" + length + key + body


def read_until(s: socket.socket, needle: bytes) -> bytes:
    data, deadline = b"", time.monotonic() + WAIT
    while needle not in data:
        assert time.monotonic() < deadline, data[-500:]
        data += s.recv(65536)
    return data


def test_socket_transport_like_positron(kc):
    state = kc.start_like_positron("socket")
    assert "base_path" not in state and state["transport"] == "socket"  # else Positron picks TCP
    sock = state["socket_path"]
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    # the API at the socket's root (the client's base URL is http://localhost)
    code, status = unix_http(sock, "GET", "/status", kc.token)
    assert code == 200 and status["server_id"] == state["server_id"]
    assert unix_http(sock, "GET", "/sessions", "wrong")[0] == 401
    assert (
        unix_http(
            sock,
            "PUT",
            "/sessions",
            kc.token,
            {"session_id": "positron-socket-1", "kernel_name": "python3"},
        )[0]
        == 200
    )
    code, info = unix_http(sock, "POST", "/sessions/positron-socket-1/start", kc.token)
    assert code == 200 and info["status"] == "ok", info
    code, channel = unix_http(sock, "GET", "/sessions/positron-socket-1/channels", kc.token)
    assert code == 200 and channel == os.path.join(
        str(kc.socket_dir), f"kc-{kc.proc.pid}.positron.sock"
    )
    assert stat.S_IMODE(os.stat(channel).st_mode) == 0o600
    request = json.dumps(
        {
            "channel": "shell",
            "header": {"msg_id": "k1", "msg_type": "kernel_info_request"},
            "parent_header": {},
            "metadata": {},
            "content": {},
        }
    ).encode()
    # with an HTTP upgrade, as Positron's `ws` does for ws+unix://<path>:/api/channels/<id>
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(WAIT)
        s.connect(channel)
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(
            f"GET /api/channels/positron-socket-1 HTTP/1.1\r\nHost: localhost\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {kc.token}\r\n\r\n".encode()
        )
        assert read_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 101")
        s.sendall(ws_frame(request, mask=True))
        assert b"kernel_info_reply" in read_until(s, b"kernel_info_reply")
        # raw from the first byte, on a second connection: it displaces the first
        with socket.socket(socket.AF_UNIX) as raw:
            raw.settimeout(WAIT)
            raw.connect(channel)
            raw.sendall(ws_frame(request, mask=False))
            assert b"kernel_info_reply" in read_until(raw, b"kernel_info_reply")
            assert b"clientDisconnected" in read_until(s, b"clientDisconnected")
    # a wrong token on the upgrade is a 401
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(WAIT)
        s.connect(channel)
        s.sendall(
            f"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nAuthorization: Bearer nope\r\n\r\n".encode()
        )
        assert read_until(s, b"\r\n\r\n").startswith(b"HTTP/1.1 401")
    pid = unix_http(sock, "GET", "/sessions/positron-socket-1", kc.token)[1]["process_id"]
    assert unix_http(sock, "POST", "/shutdown", kc.token)[0] == 200
    assert kc.wait() == 0
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not os.path.exists(channel) and not os.path.exists(sock)


def test_token_none_disables_auth(kc):
    kc.launch(
        ["--token", "none", "--connection-file", str(kc.workdir / "c.json"), "--transport", "tcp"]
    )
    deadline = time.monotonic() + WAIT
    while not (kc.workdir / "c.json").exists():
        assert kc.proc.poll() is None and time.monotonic() < deadline, kc.output()[-2000:]
        time.sleep(0.1)
    state = json.loads((kc.workdir / "c.json").read_text())
    assert state["bearer_token"] == ""
    base = state["base_path"]
    assert http_json("GET", f"{base}/status", "anything")[0] == 200
    assert http_json("PUT", f"{base}/sessions", "", {"kernel_name": "python3"})[0] == 200
    assert http_json("POST", f"{base}/shutdown", "")[0] == 200
    assert kc.wait() == 0


def test_a_failed_handshake_stops_the_server(kc):
    kc.token_file.write_text(kc.token)
    kc.launch(
        [
            "-t",
            str(kc.token_file),
            "--handshake-socket",
            str(kc.workdir / "nobody.sock"),
            "--transport",
            "tcp",
        ]
    )
    assert kc.wait() == 1
    assert "Handshake on" in kc.output()
