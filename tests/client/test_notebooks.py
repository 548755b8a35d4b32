"""Notebooks through the nbclient pair (session_ext.client.kernel): what `jupyter execute`
does, papermill, and a notebook run in a session someone else made."""

from __future__ import annotations

import nbformat
import papermill
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

from session_ext.client import Supervisor
from session_ext.client.kernel import SupervisorKernelManager

from ..support.notebooks import code_cells, make_notebook, stream


def config_for(server, **more) -> Config:
    c = Config()
    c.SupervisorKernelManager.server_connection_file = str(server.connection_file)
    for name, value in more.items():
        setattr(c.SupervisorKernelManager, name, value)
    return c


def execute_like_jupyter_execute(path, config, allow_errors=False):
    """What `jupyter execute --inplace` does (nbclient.cli), with our kernel manager."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=60,
        startup_timeout=60,
        allow_errors=allow_errors,
        kernel_name=nb.metadata.kernelspec.name,
        resources={"metadata": {"path": str(path.parent)}},
        kernel_manager_class=SupervisorKernelManager,
        config=config,
    )
    client.execute()
    nbformat.write(nb, path)
    return client


def test_jupyter_execute_through_a_supervised_session(supervisor_server, tmp_path):
    path = make_notebook(
        tmp_path / "run.ipynb",
        "import os\nprint(os.getcwd())",
        "x = 6 * 7\nx",
        "from IPython.display import display, HTML\ndisplay(HTML('<b>hi</b>'))",
    )
    client = execute_like_jupyter_execute(path, config_for(supervisor_server))
    cells = code_cells(path)
    assert stream(cells[0]) == f"{tmp_path}\n"  # the notebook's directory, as nbclient asks
    assert cells[1].outputs[0]["data"] == {"text/plain": "42"}
    assert [c.execution_count for c in cells] == [1, 2, 3]
    assert cells[2].outputs[0]["data"]["text/html"] == "<b>hi</b>"
    assert nbformat.read(path, as_version=4).metadata.language_info.name == "python"
    # the session it made is gone
    assert client.km is None
    assert supervisor_server.ok("GET", "sessions")["sessions"] == []


def test_a_failing_cell_raises_as_nbclient_does(supervisor_server, tmp_path):
    path = make_notebook(tmp_path / "fail.ipynb", "1 / 0", "print('after')")
    with pytest.raises(CellExecutionError, match="ZeroDivisionError"):
        execute_like_jupyter_execute(path, config_for(supervisor_server))
    assert supervisor_server.ok("GET", "sessions")["sessions"] == []
    execute_like_jupyter_execute(path, config_for(supervisor_server), allow_errors=True)
    cells = code_cells(path)
    assert cells[0].outputs[0]["ename"] == "ZeroDivisionError"
    assert stream(cells[1]) == "after\n"


def test_in_an_existing_session_its_queue_and_history(supervisor_server, tmp_path):
    path = make_notebook(tmp_path / "borrowed.ipynb", "y = 2", "print(y + x)")
    with Supervisor.from_connection_file(supervisor_server.connection_file) as sv:
        session = sv.create_session("python3", start=True)
        assert session.execute("x = 40").result().ok
        execute_like_jupyter_execute(
            path, config_for(supervisor_server, session_id=session.session_id)
        )
        assert stream(code_cells(path)[1]) == "42\n"  # the session's own state
        history = session.history(5)
        assert [e.input for e in history] == ["x = 40", "y = 2", "print(y + x)"]
        assert session.info().status == "idle"  # a borrowed session is left running


def test_papermill_with_the_kernel_manager(supervisor_server, tmp_path):
    source = make_notebook(tmp_path / "in.ipynb", "n = 1", "print(n * 2)")
    nb = nbformat.read(source, as_version=4)
    nb.cells[1].metadata["tags"] = ["parameters"]
    nbformat.write(nb, source)
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(source),
        str(out),
        parameters={"n": 21},
        kernel_name="python3",
        kernel_manager_class=SupervisorKernelManager,
        config=config_for(supervisor_server),
    )
    cells = code_cells(out)
    assert "n = 21" in cells[1].source  # papermill's injected parameters
    assert stream(cells[-1]) == "42\n"
    assert supervisor_server.ok("GET", "sessions")["sessions"] == []
