"""`session-ext` in a real terminal (tmux): a run streaming line by line, Ctrl-C stopping the
cell and not the program, "queued, N ahead", a detached notebook run that outlives its
terminal, and an interactive prompt."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from session_ext.client import Supervisor

from ..support.helpers import WAIT
from ..support.notebooks import code_cells, make_notebook, stream
from ..support.terminal import Terminal, cli_command


@pytest.fixture(autouse=True)
def tmux_installed():
    """`make test` installs tmux; without it these tests skip, except in CI (a failure)."""
    if shutil.which("tmux") is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is not installed (make test installs it)")
        pytest.skip("tmux is not installed (make tmux installs it)")


def line(text: str):
    """A test of the screen: ``text`` is one of its lines (not just part of a typed command)."""
    return lambda screen: text in screen.splitlines()


@pytest.fixture
def terminal(supervisor_server, tmp_path):
    """A terminal whose `session-ext` finds the test's server by itself (its runtime dir)."""
    term = Terminal(tmp_path, env={"JUPYTER_RUNTIME_DIR": str(supervisor_server.runtime_dir)})
    yield term.start()
    term.close()


@pytest.fixture
def client(supervisor_server):
    with Supervisor.from_connection_file(supervisor_server.connection_file) as sv:
        yield sv


def test_run_streams_a_slow_loop_line_by_line(terminal):
    terminal.type(
        "session-ext run $'import time\\nfor i in range(4):\\n"
        '    print(f"line {i}", flush=True)\\n    time.sleep(1)\'; echo EXIT=$?'
    )
    seen = {}
    deadline = time.monotonic() + WAIT + 10
    while len(seen) < 4 and time.monotonic() < deadline:
        screen = terminal.screen()
        for i in range(4):
            if f"line {i}" in screen and i not in seen:
                seen[i] = (time.monotonic(), [j for j in range(4) if f"line {j}" in screen])
        time.sleep(0.05)
    assert sorted(seen) == [0, 1, 2, 3], terminal.screen()
    # each line showed alone first, about a second after the one before
    assert [visible for _, visible in (seen[i] for i in range(4))] == [
        list(range(i + 1)) for i in range(4)
    ]
    assert seen[3][0] - seen[0][0] > 1.5
    terminal.wait_for(line("EXIT=0"))


def test_ctrl_c_interrupts_the_cell_not_the_command(terminal, client):
    session = client.create_session("python3", start=True)
    assert session.execute("x = 5").result(WAIT).ok
    terminal.type(
        f"session-ext run --session {session.session_id} "
        "'import time; print(\"started\", flush=True); time.sleep(60)'; echo EXIT=$?"
    )
    terminal.wait_for(line("started"))
    terminal.keys("C-c")
    screen = terminal.wait_for(lambda s: any(x.startswith("EXIT=") for x in s.splitlines()))
    assert "interrupting the request" in screen
    assert "KeyboardInterrupt" in screen and line("EXIT=1")(screen)
    assert "session_ext/client" not in screen  # the program's own traceback: none
    # the session lives on, its state kept
    assert session.info().status == "idle"
    terminal.type(f"session-ext run -s {session.session_id} 'print(x * 2)'; echo EXIT=$?")
    terminal.wait_for(lambda s: line("10")(s) and line("EXIT=0")(s))


def test_a_run_waiting_in_the_queue_says_how_many_are_ahead(terminal, client):
    session = client.create_session("python3", start=True)
    busy = session.execute("import time; time.sleep(4)")
    terminal.type(f"session-ext run -s {session.session_id} 'print(\"mine\")'; echo EXIT=$?")
    terminal.wait_for("queued, 1 ahead")
    screen = terminal.wait_for(line("EXIT=0"))
    assert line("mine")(screen)
    assert busy.result(WAIT).ok


def test_run_notebook_detached_outlives_its_terminal(terminal, supervisor_server, tmp_path):
    path = make_notebook(
        tmp_path / "report.ipynb",
        "import time\nfor i in range(3):\n    print('step', i, flush=True)\n    time.sleep(1.5)",
        "result = 6 * 7\nresult",
        "print('done', result)",
    )
    terminal.type("session-ext run-notebook report.ipynb --detach")
    screen = terminal.wait_for("session-ext status")
    session_id = screen.split("in session ")[1].split()[0]
    terminal.close()  # the terminal goes while the first cell still runs
    info = supervisor_server.ok("GET", f"sessions/{session_id}")
    assert info["session_mode"] == "notebook" and info["status"] in ("busy", "idle")
    assert code_cells(path)[0].outputs == []
    deadline = time.monotonic() + 60
    while supervisor_server.ok("GET", f"sessions/{session_id}/notebook_run")["status"] != "written":
        assert time.monotonic() < deadline, "the notebook was never written"
        time.sleep(0.2)
    cells = code_cells(path)
    assert stream(cells[0]) == "step 0\nstep 1\nstep 2\n"
    assert cells[1].outputs[0]["data"] == {"text/plain": "42"}
    assert stream(cells[2]) == "done 42\n"
    assert [c.execution_count for c in cells] == [1, 2, 3]
    # the kernel was shut down once written; status and fetch tell what happened
    deadline = time.monotonic() + WAIT
    while supervisor_server.ok("GET", f"sessions/{session_id}")["status"] != "exited":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    env = {"JUPYTER_RUNTIME_DIR": str(supervisor_server.runtime_dir)}
    status = cli(["status", str(path)], tmp_path, env)
    assert status.returncode == 0 and "written" in status.stdout and "3/3 cells" in status.stdout
    fetched = cli(["fetch", str(path), "-o", str(tmp_path / "copy.ipynb")], tmp_path, env)
    assert fetched.returncode == 0, fetched.stderr
    assert stream(code_cells(tmp_path / "copy.ipynb")[2]) == "done 42\n"


def cli(args, cwd, env):
    return subprocess.run(
        [*cli_command(), *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=WAIT * 2,
    )


def test_attach_runs_two_cells(terminal, client):
    session = client.create_session("python3", start=True)
    terminal.type(f"session-ext attach {session.session_id}; echo EXIT=$?")
    terminal.wait_for(">>>")
    terminal.type("x = 21")
    terminal.wait_for(lambda s: s.count(">>>") == 2)
    terminal.type("print(x * 2)")
    terminal.wait_for(line("42"))
    terminal.type("for i in range(2):")
    terminal.wait_for(lambda s: s.rstrip().endswith("..."))
    terminal.type("    print('loop', i)")
    terminal.type("")
    terminal.wait_for("loop 1")
    terminal.wait_for(lambda s: s.count(">>>") == 4)
    terminal.keys("C-d")
    terminal.wait_for(line("EXIT=0"))
    assert [e.input for e in session.history(5)] == [
        "x = 21",
        "print(x * 2)",
        "for i in range(2):\n    print('loop', i)\n",
    ]
