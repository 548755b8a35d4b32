"""Browser tests of notebook executions that outlive the page: cells run (and queued) in a
page that is then closed keep running on the server, and the notebook opened again in a new
page shows what they produced — or, while they still run, `[*]` and their output as it comes.

Run: .venv/bin/python -m pytest -q -p no:cacheprovider tests/ui/test_notebook_restore.py
Screenshots go to tests/ui/artifacts/<test>/; SESSION_EXT_UPDATE_SCREENSHOT=1 also refreshes
tests/ui/restore-screenshot.png (the README's picture; written when missing).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import struct
import time
import zlib
from pathlib import Path

import pytest

from .conftest import CHROMIUM, CHROMIUM_ARGS, DEFAULT_TIMEOUT_MS, VIEWPORT, LabServer

expect = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is missing"
).expect

README_SCREENSHOT = Path(__file__).resolve().parent / "restore-screenshot.png"
NOTEBOOK = "restore.ipynb"
SLOW = 'import time; time.sleep(6); print("done-1")'
DRAIN_TIMEOUT = 60.0  # seconds for the server to run what the closed page queued


def notebook(*cells: tuple[str, str]) -> dict:
    """An nbformat 4.5 notebook whose code cells have the given (id, source)."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {
                "name": "python3",
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
            },
            "language_info": {"name": "python"},
        },
        "cells": [
            {
                "cell_type": "code",
                "id": cid,
                "source": src,
                "metadata": {},
                "outputs": [],
                "execution_count": None,
            }
            for cid, src in cells
        ],
    }


def save(lab, nb: dict) -> None:
    """Write the notebook through the contents API (as a page saving it does)."""
    code, model = lab.call(
        "PUT", f"/api/contents/{NOTEBOOK}", {"type": "notebook", "format": "json", "content": nb}
    )
    assert code in (200, 201), (code, model)  # 201: created


def tiny_png() -> bytes:
    """A 4x4 red PNG, made here (no image library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 4 for _ in range(4))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class Browser:
    """Debian's chromium; each page in its own context (a reopened tab, or a second browser:
    either way a new JupyterLab client), its console logged to the artifacts."""

    def __init__(self, api, artifacts: Path):
        self.api = api
        self.artifacts = artifacts
        self.console: list[str] = []
        self.pages = 0

    def __enter__(self):
        self.playwright = self.api.sync_playwright().start()
        self.browser = self.playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=DEFAULT_TIMEOUT_MS
        )
        return self

    def __exit__(self, *exc):
        (self.artifacts / "browser-console.log").write_text("\n".join(self.console) + "\n")
        try:
            self.browser.close()
        finally:
            self.playwright.stop()

    def open_notebook(self, lab):
        self.pages += 1
        tag = f"page{self.pages}"
        context = self.browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        context.set_default_navigation_timeout(DEFAULT_TIMEOUT_MS)
        page = context.new_page()
        page.on("console", lambda m: self.console.append(f"{tag} [{m.type}] {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"{tag} [pageerror] {e}"))
        page.goto(f"{lab.base_url}/lab/tree/{NOTEBOOK}?token={lab.token}")
        page.locator("#jupyterlab-splash").wait_for(state="detached")
        expect(page.locator(".jp-NotebookPanel:visible")).to_have_count(1)
        return page


@pytest.fixture
def browser(sync_api, lab, artifacts, request):
    from .conftest import dump_server_state, failed

    with Browser(sync_api, artifacts) as b:
        yield b
        if failed(request):
            for i, context in enumerate(b.browser.contexts):
                for j, page in enumerate(context.pages):
                    try:
                        page.screenshot(path=artifacts / f"failure-{i}-{j}.png", timeout=5_000)
                    except Exception as e:
                        b.console.append(f"[test] failure screenshot failed: {e}")
            dump_server_state(lab, artifacts / "server-state.json")


def cells(page):
    return page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell")


def prompt(page, i: int):
    return cells(page).nth(i).locator(".jp-InputArea-prompt")


def output(page, i: int):
    return cells(page).nth(i).locator(".jp-OutputArea-output")


def notebook_session(lab) -> str:
    """The jupyter_server session id of the notebook (the supervisor's session id too)."""
    deadline = time.monotonic() + DEFAULT_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        for s in lab.ok("GET", "/api/sessions"):
            if s["path"] == NOTEBOOK:
                return s["id"]
        time.sleep(0.2)
    raise AssertionError("no session for the notebook")


def run_cells(browser, lab, count: int):
    """Open the notebook and run its first `count` cells (Shift+Enter each: the first runs,
    the rest wait in the server's queue); returns the page and the session id, about 1 s
    after the first cell started."""
    page = browser.open_notebook(lab)
    # The page's kernel connection is up once JupyterLab's status bar says so.
    expect(
        page.locator(".jp-StatusBar-TextItem", has_text="Python 3 (ipykernel) | Idle")
    ).to_have_count(1)
    session_id = notebook_session(lab)
    cells(page).first.locator(".cm-content").click()
    started = time.monotonic()
    for _ in range(count):
        page.keyboard.press("Shift+Enter")
    for i in range(count):
        expect(prompt(page, i)).to_have_text("[*]:")
    queue = lab.ok("GET", f"/supervisor/sessions/{session_id}")["execution_queue"]
    assert queue["active"] is not None and queue["length"] == count - 1, queue
    time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    return page, session_id


def run_and_close(browser, lab, count: int) -> str:
    """run_cells, then close the page (its tab is just gone)."""
    page, session_id = run_cells(browser, lab, count)
    page.close()  # no beforeunload
    page.context.close()
    return session_id


def cells_record(lab, session_id: str) -> dict[str, dict]:
    return {
        c["cell_id"]: c for c in lab.ok("GET", f"/supervisor/sessions/{session_id}/cells")["cells"]
    }


def wait_drained(lab, session_id: str, cell_ids: list[str]) -> dict[str, dict]:
    """Until the supervisor's queue is empty and every cell's execution has ended."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while True:
        session = lab.ok("GET", f"/supervisor/sessions/{session_id}")
        record = cells_record(lab, session_id)
        queue = session["execution_queue"]
        if (
            queue["length"] == 0
            and queue["active"] is None
            and all(record.get(c, {}).get("status") in ("ok", "error", "aborted") for c in cell_ids)
        ):
            return record
        assert time.monotonic() < deadline, (queue, record)
        time.sleep(0.3)


def saved_outputs(lab) -> list[list]:
    nb = lab.ok("GET", f"/api/contents/{NOTEBOOK}")["content"]
    return [c.get("outputs") for c in nb["cells"]]


def notice(page, text: str):
    return page.locator(".Toastify__toast").filter(has_text=text)


def settled(toast) -> None:
    """Until the toast has slid fully into view (for the screenshot)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        box = toast.bounding_box()
        if box and box["x"] + box["width"] <= VIEWPORT["width"]:
            time.sleep(0.3)  # the end of the animation
            return
        time.sleep(0.1)


@pytest.mark.timeout(180)
def test_cells_run_while_closed_are_restored(browser, lab, artifacts):
    save(
        lab,
        notebook(("slow", SLOW), ("second", 'print("marker-2")'), ("third", 'print("marker-3")')),
    )
    session_id = run_and_close(browser, lab, 3)

    record = wait_drained(lab, session_id, ["slow", "second", "third"])
    assert [record[c]["execution_count"] for c in ("slow", "second", "third")] == [1, 2, 3], record
    assert saved_outputs(lab) == [[], [], []]  # nothing saved them

    page = browser.open_notebook(lab)
    for i, marker in enumerate(["done-1", "marker-2", "marker-3"]):
        expect(output(page, i)).to_have_text(marker)
        expect(prompt(page, i)).to_have_text(f"[{i + 1}]:")
    toast = notice(page, "3 cells ran while this notebook was closed; outputs restored")
    expect(toast).to_be_visible()
    settled(toast)
    page.screenshot(path=artifacts / "restored.png")
    if os.environ.get("SESSION_EXT_UPDATE_SCREENSHOT") or not README_SCREENSHOT.exists():
        shutil.copy(artifacts / "restored.png", README_SCREENSHOT)
    # Only the page's model has them: the file changes when the user saves.
    assert saved_outputs(lab) == [[], [], []]
    prompt(page, 0).click()  # the notebook has the focus
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 10
    while (outs := saved_outputs(lab)) == [[], [], []] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ["".join(o[0]["text"]) for o in outs] == ["done-1\n", "marker-2\n", "marker-3\n"], outs


@pytest.mark.timeout(180)
def test_a_reload_gets_the_cells_back(browser, lab, artifacts):
    save(
        lab,
        notebook(("slow", SLOW), ("second", 'print("marker-2")'), ("third", 'print("marker-3")')),
    )
    page, session_id = run_cells(browser, lab, 3)
    page.on("dialog", lambda dialog: dialog.accept())  # "leave with unsaved changes?": yes
    page.reload()  # F5: a new JupyterLab client in the same tab
    page.locator("#jupyterlab-splash").wait_for(state="detached")
    for i, marker in enumerate(["done-1", "marker-2", "marker-3"]):
        expect(output(page, i)).to_have_text(marker)
        expect(prompt(page, i)).to_have_text(f"[{i + 1}]:")
    wait_drained(lab, session_id, ["slow", "second", "third"])
    page.screenshot(path=artifacts / "after-reload.png")


@pytest.mark.timeout(180)
def test_a_second_browser_follows_while_the_first_stays_open(browser, lab, artifacts):
    slow = 'import time; print("start-1", flush=True); time.sleep(15); print("done-1")'
    save(lab, notebook(("slow", slow), ("second", 'print("marker-2")')))
    first, session_id = run_cells(browser, lab, 2)  # stays open
    second = browser.open_notebook(lab)
    for i in range(2):
        expect(prompt(second, i)).to_have_text("[*]:")
    expect(output(second, 0)).to_have_text("start-1")
    for page in (first, second):
        expect(output(page, 0)).to_have_text("start-1\ndone-1")
        expect(prompt(page, 0)).to_have_text("[1]:")
        expect(output(page, 1)).to_have_text("marker-2")
        expect(prompt(page, 1)).to_have_text("[2]:")
    wait_drained(lab, session_id, ["slow", "second"])
    texts = """() => [...document.querySelectorAll('.jp-NotebookPanel .jp-Cell')]
              .map(c => [...c.querySelectorAll('.jp-OutputArea-output')].map(o => o.innerText.trim()))"""
    for page in (first, second):  # each output once, in both
        assert page.evaluate(texts)[:2] == [["start-1\ndone-1"], ["marker-2"]]
    second.screenshot(path=artifacts / "second-browser.png")


@pytest.mark.timeout(180)
def test_a_page_that_ran_its_cells_restores_nothing_on_reconnect(browser, lab, artifacts):
    """What the page ran itself (its cells' own requests) is not "restored" again, and no
    notice shows, when its kernel connection comes back."""
    save(
        lab,
        notebook(
            ("out", 'print("a"); print("b", flush=True); import sys; print("e", file=sys.stderr)'),
            ("result", "{'x': [1, 2]}"),
            ("display", "from IPython.display import HTML, display; display(HTML('<b>bold</b>'))"),
            ("error", "1/0"),
        ),
    )
    page = browser.open_notebook(lab)
    expect(
        page.locator(".jp-StatusBar-TextItem", has_text="Python 3 (ipykernel) | Idle")
    ).to_have_count(1)
    session_id = notebook_session(lab)
    cells(page).first.locator(".cm-content").click()
    for _ in range(4):
        page.keyboard.press("Shift+Enter")
    expect(output(page, 3)).to_contain_text("ZeroDivisionError")
    wait_drained(lab, session_id, ["out", "result", "display", "error"])
    reconnects = []
    page.on("request", lambda r: reconnects.append(r.url) if "/cells" in r.url else None)
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
    page.locator(".lm-Menu-itemLabel", has_text="Reconnect to Kernel").click()
    deadline = time.monotonic() + 15
    while not reconnects and time.monotonic() < deadline:  # the restore's fetch
        page.wait_for_timeout(200)
    assert reconnects, "no /cells fetch after the kernel connection came back"
    page.wait_for_timeout(1000)
    assert page.locator(".Toastify__toast").count() == 0
    for i, count in enumerate([1, 2, 3, 4]):
        expect(prompt(page, i)).to_have_text(f"[{count}]:")


@pytest.mark.timeout(180)
def test_reopened_while_running_shows_star_then_live_output(browser, lab, artifacts):
    slow = 'import time; print("start-1", flush=True); time.sleep(20); print("done-1")'
    save(
        lab,
        notebook(("slow", slow), ("second", 'print("marker-2")'), ("third", 'print("marker-3")')),
    )
    session_id = run_and_close(browser, lab, 3)

    page = browser.open_notebook(lab)
    # The first cell still runs: [*] with its output so far; the others wait, [*] too.
    for i in range(3):
        expect(prompt(page, i)).to_have_text("[*]:")
    expect(output(page, 0)).to_have_text("start-1")
    record = cells_record(lab, session_id)
    assert [record[c]["status"] for c in ("slow", "second", "third")] == [
        "running",
        "queued",
        "queued",
    ], record
    expect(notice(page, "3 cells still queued or running")).to_be_visible()
    page.screenshot(path=artifacts / "1-reopened-while-running.png")
    assert output(page, 1).count() == 0 and output(page, 2).count() == 0

    # Then, without a reload, the rest arrives live, in order.
    expect(output(page, 0)).to_have_text("start-1\ndone-1")
    expect(prompt(page, 0)).to_have_text("[1]:")
    expect(output(page, 1)).to_have_text("marker-2")
    expect(prompt(page, 1)).to_have_text("[2]:")
    expect(output(page, 2)).to_have_text("marker-3")
    expect(prompt(page, 2)).to_have_text("[3]:")
    page.screenshot(path=artifacts / "2-finished-live.png")
    record = wait_drained(lab, session_id, ["slow", "second", "third"])
    assert record["slow"]["outputs"][0]["text"] == "start-1\ndone-1\n", record["slow"]
    # The page shows exactly what the server kept (no output twice).
    texts = page.evaluate(
        """() => [...document.querySelectorAll('.jp-NotebookPanel .jp-Cell')]
              .map(c => [...c.querySelectorAll('.jp-OutputArea-output')]
              .map(o => o.innerText.trim()))"""
    )
    assert texts[:3] == [["start-1\ndone-1"], ["marker-2"], ["marker-3"]], texts


@pytest.mark.timeout(180)
def test_a_cell_edited_while_away_is_left_alone(browser, lab, artifacts):
    cells_src = [("slow", SLOW), ("second", 'print("marker-2")'), ("third", 'print("marker-3")')]
    save(lab, notebook(*cells_src))
    session_id = run_and_close(browser, lab, 3)

    # While the cells still run, another page edits the third cell and saves the notebook.
    edited = 'print("edited elsewhere")'
    assert cells_record(lab, session_id)["third"]["status"] in ("queued", "running")
    save(lab, notebook(*cells_src[:2], ("third", edited)))
    record = wait_drained(lab, session_id, ["slow", "second", "third"])
    assert record["third"]["code"] == 'print("marker-3")' and record["third"]["outputs"]

    page = browser.open_notebook(lab)
    expect(output(page, 0)).to_have_text("done-1")
    expect(output(page, 1)).to_have_text("marker-2")
    expect(
        notice(
            page,
            "2 cells ran while this notebook was closed; outputs restored; "
            "1 edited cell was left alone",
        )
    ).to_be_visible()
    third = cells(page).nth(2)
    expect(third.locator(".cm-content")).to_have_text(edited)
    expect(prompt(page, 2)).to_have_text("[ ]:")
    expect(third.locator(".jp-OutputArea-output")).to_have_count(0)
    page.screenshot(path=artifacts / "edited-left-alone.png")


@pytest.mark.timeout(180)
def test_a_plot_made_while_away_is_restored(browser, lab, artifacts):
    png = tiny_png()
    plot = (
        "from IPython.display import Image, display; import base64\n"
        f'display(Image(data=base64.b64decode("{base64.b64encode(png).decode()}")))'
    )
    save(lab, notebook(("slow", "import time; time.sleep(4)"), ("plot", plot)))
    session_id = run_and_close(browser, lab, 2)
    record = wait_drained(lab, session_id, ["slow", "plot"])
    (display,) = record["plot"]["outputs"]
    assert display["output_type"] == "display_data" and "image/png" in display["data"], display

    page = browser.open_notebook(lab)
    image = output(page, 1).locator("img")
    expect(image).to_have_count(1)
    expect(image).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    assert image.evaluate("i => i.decode().then(() => [i.naturalWidth, i.naturalHeight])") == [4, 4]
    expect(prompt(page, 1)).to_have_text("[2]:")
    expect(
        notice(page, "2 cells ran while this notebook was closed; outputs restored")
    ).to_be_visible()
    page.screenshot(path=artifacts / "plot-restored.png")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("durable", [True, False], ids=["durable", "db-path"])
def test_outputs_survive_a_server_restart(sync_api, tmp_path, artifacts, durable):
    """`jupyter lab` with a session store (an explicit db_path; durable: the durable trait on
    too): its notebook kernels stop with it, and the notebook's next session, after the
    restart, has what the cells printed before."""
    args = (f"--SessionExtApp.db_path={tmp_path / 'sessions.db'}",)
    if durable:
        args += ("--SessionExtApp.keep_kernels_on_shutdown=True",)
    first = LabServer(tmp_path, args=args)
    second = LabServer(tmp_path, args=args)  # same root, config, data and runtime dirs
    try:
        with Browser(sync_api, artifacts) as browser:
            first.start()
            save(first, notebook(("slow", SLOW), ("second", 'print("marker-2")')))
            session_id = run_and_close(browser, first, 2)
            wait_drained(first, session_id, ["slow", "second"])
            time.sleep(1.5)  # the server stores a cell's outputs at most once a second
            first.stop()

            second.start()
            page = browser.open_notebook(second)
            expect(output(page, 0)).to_have_text("done-1")
            expect(prompt(page, 0)).to_have_text("[1]:")
            expect(output(page, 1)).to_have_text("marker-2")
            expect(prompt(page, 1)).to_have_text("[2]:")
            expect(notice(page, "2 cells ran while this notebook was closed")).to_be_visible()
            assert notebook_session(second) != session_id  # a new session took the cells over
            page.screenshot(path=artifacts / "after-server-restart.png")
    finally:
        for server in (first, second):
            server.stop()
        shutil.copy(first.log_path, artifacts / "jupyter-lab.log")  # both servers' output
