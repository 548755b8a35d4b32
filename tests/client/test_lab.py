"""The client against a real `jupyter lab` (subprocess): it finds the lab by itself, sees its
notebooks, runs code in one through the notebook's queue, and runs a notebook through the
nbclient pair."""

from __future__ import annotations

import time

import nbformat
import pytest
from nbclient import NotebookClient
from websockets.sync.client import connect

from session_ext.client import Supervisor, discovery
from session_ext.client.kernel import SupervisorKernelManager

from ..support.helpers import WAIT
from ..support.lab import LabServer
from ..support.notebooks import code_cells, make_notebook, open_in_lab, stream


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = LabServer(tmp_path_factory.mktemp("lab"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def in_lab(lab, monkeypatch):
    """Discovery pointed at the lab's runtime directory (as for its user)."""
    for name in (discovery.URL_ENV, discovery.TOKEN_ENV, discovery.CONNECTION_FILE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(lab.runtime_dir))
    monkeypatch.chdir(lab.root_dir)
    return lab


def wait_running(sv: Supervisor, session_id: str):
    deadline = time.monotonic() + WAIT
    while (info := sv.get_session(session_id)).status != "idle":
        assert time.monotonic() < deadline, info.status
        time.sleep(0.1)
    return info


def test_the_client_finds_the_lab_and_runs_code_in_its_notebook(in_lab):
    lab = in_lab
    make_notebook(lab.root_dir / "analysis.ipynb", "a = 1")
    model = open_in_lab(lab, "analysis.ipynb")
    # the notebook open in a browser: a client of jupyter_server's kernel websocket (until
    # then jupyter_server reports the kernel `starting`, and so does the supervisor)
    page = connect(
        f"ws://127.0.0.1:{lab.port}/api/kernels/{model['kernel']['id']}/channels"
        f"?session_id=page&token={lab.token}",
        proxy=None,
    )
    with page, Supervisor.discover() as sv:
        assert sv.endpoint.api_url == f"{lab.base_url}/supervisor"
        assert sv.endpoint.root_dir == str(lab.root_dir)
        info = wait_running(sv, model["id"])
        assert info.session_mode == "notebook"
        assert info.notebook_path == str(lab.root_dir / "analysis.ipynb")
        session = sv.session(info.session_id)
        reply = session.execute("import os\nprint(os.getcwd())", cell_id="cell-1").result(WAIT)
        assert reply.stdout == f"{lab.root_dir}\n"
        [cell] = session.cells()
        assert (cell.cell_id, cell.status, cell.outputs) == ("cell-1", "ok", reply.outputs)
        assert [e.source for e in session.history(1)] == ["websocket"]
    assert lab.call("DELETE", f"/api/sessions/{model['id']}")[0] == 204


def test_nbclient_runs_a_notebook_on_the_labs_supervisor(in_lab, tmp_path):
    path = make_notebook(tmp_path / "job.ipynb", "print(sum(range(10)))")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_manager_class=SupervisorKernelManager, timeout=60).execute()
    assert stream(nb.cells[1]) == "45\n"
    assert code_cells(path)[0].outputs == []  # (the file is the caller's to write)
    with Supervisor.discover() as sv:
        assert [s for s in sv.list_sessions() if s.session_mode == "background"] == []
