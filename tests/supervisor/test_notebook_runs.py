"""A notebook run's outputs written into its .ipynb by the server when its cells have run
(`PUT /sessions/{id}/notebook_run`), with no client attached (what `session-ext
run-notebook --detach` leaves behind)."""

from __future__ import annotations

import asyncio
import uuid

import nbformat
import pytest
from jupyter_server.auth.authorizer import Authorizer

from ..support.helpers import WAIT, execute_request, server_config
from ..support.notebooks import code_cells, make_notebook, stream


class ContentsAuthorizer(Authorizer):
    """Everything, and writing files (contents) unless a test says no."""

    writing = True

    def is_authorized(self, handler, user, action, resource):
        return self.writing or not (resource == "contents" and action == "write")


@pytest.fixture
def jp_server_config():
    return server_config(authorizer_class=ContentsAuthorizer)


async def notebook_session(api, path) -> str:
    return await api.started(session_mode="notebook", notebook_uri=path.as_uri())


def queue_cells(channel, path, codes=None) -> list[str]:
    """Each code cell of the notebook as JupyterLab sends it (``codes``: other code)."""
    msg_ids = []
    for i, cell in enumerate(code_cells(path)):
        msg = execute_request(codes[i] if codes else cell.source, uuid.uuid4().hex)
        msg["metadata"] = {"cellId": cell.id}
        channel.send(msg)
        msg_ids.append(msg["header"]["msg_id"])
    return msg_ids


async def run_of(api, session_id, until=("written", "failed")) -> dict:
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        run = await api.ok("GET", f"sessions/{session_id}/notebook_run")
        if run["status"] in until or asyncio.get_running_loop().time() > deadline:
            return run
        await asyncio.sleep(0.05)


async def test_the_notebook_is_written_when_its_cells_have_run_with_no_client(api, tmp_path):
    path = make_notebook(
        tmp_path / "nb.ipynb",
        "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.3)",
        "x = 6 * 7\nx",
        "print('last', x)",
    )
    session_id = await notebook_session(api, path)
    events = await api.ws("events")
    channel = await api.channels(session_id)
    msg_ids = queue_cells(channel, path)
    await channel.reply_to(msg_ids[0])  # (all three are in the queue by now)
    run = await api.ok(
        "PUT", f"sessions/{session_id}/notebook_run", {"path": str(path), "msg_ids": msg_ids}
    )
    assert (run["status"], run["cells"], run["output_path"]) == ("running", 3, str(path))
    channel.close()  # nobody is attached any more
    event = await events.until(lambda e: e.get("event") == "notebook_run")
    assert event["run"]["status"] == "written" and event["session_id"] == session_id
    run = await run_of(api, session_id)
    assert (run["finished"], run["errors"]) == (3, 0)
    cells = code_cells(path)
    assert [c.execution_count for c in cells] == [1, 2, 3]
    assert stream(cells[0]) == "0\n1\n2\n"
    assert cells[1].outputs[0]["data"] == {"text/plain": "42"}
    assert stream(cells[2]) == "last 42\n"
    assert nbformat.read(path, as_version=4).cells[0].source == "# A notebook"
    nbformat.validate(nbformat.read(path, as_version=4))
    events.close()


async def test_an_error_aborts_the_rest_and_an_edited_cell_is_left_alone(api, tmp_path):
    path = make_notebook(tmp_path / "nb.ipynb", "print('edited since')", "1 / 0", "print('never')")
    nb = nbformat.read(path, as_version=4)
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", text="old\n")]
    nb.cells[3].execution_count = 7
    nbformat.write(nb, path)
    session_id = await notebook_session(api, path)
    channel = await api.channels(session_id)
    msg_ids = queue_cells(channel, path, ["print('what ran')", "1 / 0", "print('never')"])
    await channel.idle_of(msg_ids[2])
    run = await api.ok(
        "PUT", f"sessions/{session_id}/notebook_run", {"path": str(path), "msg_ids": msg_ids}
    )
    assert run["status"] in ("writing", "written")  # everything had run already
    run = await run_of(api, session_id)
    assert (run["status"], run["finished"], run["errors"]) == ("written", 3, 1)
    cells = code_cells(path)
    assert cells[0].outputs == [] and cells[0].execution_count is None  # not what ran there
    assert cells[1].outputs[0]["ename"] == "ZeroDivisionError"
    assert (cells[2].outputs, cells[2].execution_count) == ([], None)  # aborted: cleared
    channel.close()


async def test_a_copy_and_the_kernel_shut_down(api, tmp_path):
    path = make_notebook(tmp_path / "nb.ipynb", "print('copy')")
    out = tmp_path / "out" / "copy.ipynb"
    out.parent.mkdir()
    nbformat.write(nbformat.read(path, as_version=4), out)
    session_id = await notebook_session(api, out)
    channel = await api.channels(session_id)
    msg_ids = queue_cells(channel, out)
    await api.ok(
        "PUT",
        f"sessions/{session_id}/notebook_run",
        {"path": str(out), "msg_ids": msg_ids, "shutdown_kernel": True},
    )
    run = await run_of(api, session_id)
    assert run["status"] == "written" and run["shutdown_kernel"] is True
    await api.wait_status(session_id, "exited")
    assert stream(code_cells(out)[0]) == "copy\n"
    assert code_cells(path)[0].outputs == []  # the source is untouched
    channel.close()


async def test_bad_runs_are_refused(api, tmp_path):
    path = make_notebook(tmp_path / "nb.ipynb", "pass")
    console = await api.started()
    session_id = await notebook_session(api, path)
    url = f"sessions/{session_id}/notebook_run"
    r = await api.call("GET", url)
    assert (r.code, r.json["code"]) == (404, "not_found")
    r = await api.call("PUT", "sessions/nope/notebook_run", {"path": str(path), "msg_ids": ["m"]})
    assert (r.code, r.json["code"]) == (404, "KS-1")
    r = await api.call(
        "PUT", f"sessions/{console}/notebook_run", {"path": str(path), "msg_ids": ["m"]}
    )
    assert r.code == 400 and "not a notebook session" in r.json["message"]
    channel = await api.channels(session_id)
    [long] = queue_cells(channel, path, ["import time; time.sleep(30)"])
    await channel.until(
        lambda m: m.get("channel") == "iopub" and m["parent_header"].get("msg_id") == long
    )
    (tmp_path / "secret.ipynb").write_text("not json: a secret")
    for body, words in [
        ({"path": "nb.ipynb", "msg_ids": [long]}, "absolute path"),
        ({"path": str(path), "msg_ids": []}, "msg_ids"),
        ({"path": str(path), "msg_ids": ["never-queued"]}, "never queued"),
        ({"path": str(tmp_path / "missing.ipynb"), "msg_ids": [long]}, "Cannot read"),
        ({"path": str(tmp_path / "secret.ipynb"), "msg_ids": [long]}, "not a notebook"),
        (
            {"path": str(path), "output_path": "/nonexistent/x.ipynb", "msg_ids": [long]},
            "Cannot write",
        ),
    ]:
        r = await api.call("PUT", url, body)
        assert r.code == 400 and words in r.json["message"], (body, r)
        assert "secret" not in r.json["message"].replace("secret.ipynb", "")
    body = {"path": str(path), "msg_ids": [long]}
    assert (await api.call("PUT", url, body)).code == 200
    r = await api.call("PUT", url, body)
    assert (r.code, r.json["code"]) == (409, "conflict")
    await api.ok("POST", f"sessions/{session_id}/interrupt")
    assert (await run_of(api, session_id))["status"] == "written"
    channel.close()


async def test_writing_needs_the_authorizers_consent_for_contents(api, tmp_path, monkeypatch):
    monkeypatch.setattr(ContentsAuthorizer, "writing", False)
    path = make_notebook(tmp_path / "nb.ipynb", "pass")
    session_id = await notebook_session(api, path)
    channel = await api.channels(session_id)
    msg_ids = queue_cells(channel, path)
    await channel.idle_of(msg_ids[0])
    r = await api.call(
        "PUT", f"sessions/{session_id}/notebook_run", {"path": str(path), "msg_ids": msg_ids}
    )
    assert (r.code, r.json["code"]) == (403, "forbidden")
    channel.close()
