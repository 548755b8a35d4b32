"""Every `session-ext` command as a script runs it (no terminal): what it prints, its exit
status, and one clear line (never a traceback) for an expected failure."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time

import nbformat
import pytest

from session_ext.client import Supervisor

from ..support.helpers import WAIT
from ..support.notebooks import code_cells, make_notebook, stream
from ..support.terminal import cli_command

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


@pytest.fixture
def cli(supervisor_server, tmp_path):
    """`session-ext ARGS` finding the test's server by itself; (status, stdout, stderr)."""

    def run(*args, stdin=None, env=None, cwd=tmp_path):
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_EXT_")}
        environ["JUPYTER_RUNTIME_DIR"] = str(supervisor_server.runtime_dir)
        result = subprocess.run(
            [*cli_command(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=cwd,
            env={**environ, **(env or {})},
            timeout=WAIT * 3,
        )
        return result.returncode, result.stdout, result.stderr

    return run


@pytest.fixture
def client(supervisor_server):
    with Supervisor.from_connection_file(supervisor_server.connection_file) as sv:
        yield sv


def one_line_error(stderr: str, *words: str) -> None:
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0], stderr


def test_run_code_file_and_stdin_with_exit_status(cli, supervisor_server, tmp_path):
    assert cli("run", "print(6 * 7)") == (0, "42\n", "")
    script = tmp_path / "script.py"
    script.write_text("import os\nprint(os.getcwd())\n")
    assert cli("run", str(script))[:2] == (0, f"{tmp_path}\n")  # the new session runs here
    assert cli("run", "-", stdin="print('piped')\n")[:2] == (0, "piped\n")
    status, out, err = cli("run", "import sys\nprint('out'); print('err', file=sys.stderr)\n1/0")
    assert status == 1 and out == "out\n"
    assert "err\n" in err and "ZeroDivisionError" in err and "\x1b[" not in err
    # each run had a session of its own, gone afterwards
    assert supervisor_server.ok("GET", "sessions")["sessions"] == []
    status, out, err = cli("run", "--keep", "v = 1")
    kept = err.split("session ")[1].split()[0]
    assert status == 0 and supervisor_server.ok("GET", f"sessions/{kept}")["status"] == "idle"


def test_images_are_saved_to_files(cli, tmp_path):
    code = (
        "import base64\nfrom IPython.display import Image, display\n"
        f"display(Image(data=base64.b64decode('{PNG}')))\n'text'"
    )
    status, out, _ = cli("run", "--images-dir", str(tmp_path / "img"), code)
    assert status == 0
    saved = out.split("image/png saved to ")[1].split("]")[0].strip()
    assert saved.startswith(str(tmp_path / "img")) and open(saved, "rb").read()[:4] == b"\x89PNG"
    assert "Out[1]: 'text'" in out


def test_session_commands(cli, client):
    status, out, _ = cli("new", "--name", "worker")
    session_id = out.strip()
    assert status == 0 and client.get_session(session_id).display_name == "worker"
    session = client.session(session_id)
    status, out, err = cli("ls")
    assert status == 0 and session_id in out and "worker" in out and "idle" in out
    assert "MiB" in out or " - " in out  # memory (sampled once a second)
    # a request running, one waiting: queue, cancel by a prefix of its msg_id
    running = session.execute("import time; time.sleep(30)")
    waiting = session.execute("print('waiting')")
    deadline = time.monotonic() + WAIT
    while not (running.started and waiting.queued):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status, out, _ = cli("queue", session_id[:6])
    assert status == 0 and running.msg_id in out and waiting.msg_id in out
    assert "running" in out and "waiting" in out and "time.sleep(30)" in out
    assert cli("cancel", session_id, waiting.msg_id[:8])[:2] == (0, f"cancelled {waiting.msg_id}\n")
    assert waiting.result(WAIT).status == "aborted"
    status, _, err = cli("cancel", session_id, running.msg_id)
    assert status == 1
    one_line_error(err, "running", "session-ext interrupt")
    assert cli("interrupt", "worker")[:2] == (0, f"{session_id}: interrupted\n")
    assert running.result(WAIT).error.ename == "KeyboardInterrupt"
    status, out, _ = cli("history", session_id, "-n", "5")
    assert status == 0 and "aborted" in out and "KeyboardInterrupt" in out
    status, out, _ = cli("logs", session_id)
    assert status == 0 and f"{session_id} idle" in out
    assert cli("restart", session_id)[:2] == (0, f"{session_id}: restarted\n")
    assert cli("kill", session_id)[:2] == (0, f"{session_id}: killed\n")
    assert cli("rm", session_id)[:2] == (0, f"deleted {session_id}\n")


def test_run_notebook_writes_the_outputs_and_fails_with_the_notebook(
    cli, supervisor_server, tmp_path
):
    path = make_notebook(tmp_path / "ok.ipynb", "print('a')", "2 + 2")
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        del cell["id"]  # an nbformat 4.4 notebook: the cells get ids first
    nb.nbformat_minor = 4
    nbformat.write(nb, path)
    status, out, err = cli("run-notebook", str(path))
    assert status == 0, err
    assert "wrote" in out and "2 cells, 0 failed" in out
    cells = code_cells(path)
    assert stream(cells[0]) == "a\n" and cells[1].outputs[0]["data"] == {"text/plain": "4"}
    assert all(c.get("id") for c in cells)
    bad = make_notebook(tmp_path / "bad.ipynb", "1/0", "print('never')")
    status, out, err = cli("run-notebook", str(bad), "-o", str(tmp_path / "out.ipynb"))
    assert status == 1 and "ZeroDivisionError" in err and "1 not run" in out
    cells = code_cells(tmp_path / "out.ipynb")
    assert cells[0].outputs[0]["ename"] == "ZeroDivisionError" and cells[1].outputs == []
    assert code_cells(bad)[0].outputs == []  # the source untouched
    status, _, _ = cli("run-notebook", str(bad), "--allow-errors")
    assert status == 1 and stream(code_cells(bad)[1]) == "never\n"
    assert supervisor_server.ok("GET", "sessions")["sessions"] == []


def test_expected_failures_are_one_line(cli, supervisor_server, tmp_path):
    status, _, err = cli("ls", env={"JUPYTER_RUNTIME_DIR": str(tmp_path)})
    assert status == 1
    one_line_error(err, "No running Jupyter server", "jupyter session-ext")
    status, _, err = cli("--url", supervisor_server.info["base_path"], "--token", "wrong", "ls")
    assert status == 1
    one_line_error(err, "refused the token", "--token")
    status, _, err = cli("run", "--session", "nope", "1")
    assert status == 1
    one_line_error(err, "no session 'nope'", "session-ext ls")
    status, _, err = cli("--url", "http://127.0.0.1:9", "--token", "x", "ls")
    assert status == 1
    one_line_error(err, "Cannot reach the supervisor")
    status, _, err = cli("run-notebook", str(tmp_path / "missing.ipynb"))
    assert status == 1
    one_line_error(err, "no notebook at")
    (tmp_path / "n.ipynb").write_text("{}")
    status, _, err = cli("run", str(tmp_path / "n.ipynb"))
    assert status == 1
    one_line_error(err, "run-notebook")


def test_servers_and_the_connection_file(cli, supervisor_server):
    status, out, _ = cli("servers")
    assert status == 0 and supervisor_server.info["base_path"] in out
    status, out, err = cli(
        "--connection-file",
        str(supervisor_server.connection_file),
        "ls",
        env={"JUPYTER_RUNTIME_DIR": "/nonexistent"},
    )
    assert status == 0 and "connection file" in err


def test_logs_follow_the_events(supervisor_server, client, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_EXT_")}
    env["JUPYTER_RUNTIME_DIR"] = str(supervisor_server.runtime_dir)
    proc = subprocess.Popen(
        [*cli_command(), "logs", "-f"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    try:
        session = client.create_session("python3", start=True)
        assert session.execute("pass").result(WAIT).ok
        sid = session.session_id
        seen = []
        deadline = time.monotonic() + WAIT
        # the events as they come, or (if it subscribed late) the snapshot's state
        while not any(f"{sid} status idle" in x or f"{sid} idle (queue 0)" in x for x in seen):
            assert time.monotonic() < deadline, seen
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                pass
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(WAIT) == 0
        assert "Traceback" not in proc.stderr.read()
