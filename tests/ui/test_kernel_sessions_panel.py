"""Browser test of the labextension against the real server: a notebook opened in JupyterLab
shows up in the Kernel Sessions panel, its queued cells are listed and cancellable there,
and its running cell can be interrupted from there.

Run: .venv/bin/python -m pytest -q -p no:cacheprovider tests/ui
Screenshots go to tests/ui/artifacts/<test>/; SESSION_EXT_UPDATE_SCREENSHOT=1 also refreshes
tests/ui/panel-screenshot.png (the README's picture; written when missing).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from ..support.notebook_page import cells, run_in_new_cell

expect = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is missing"
).expect

# Long enough that the two cells typed after it are still queued while the panel is checked
# and one of them cancelled (a few seconds of UI work), short enough to keep the test quick.
SLOW_SECONDS = 8
SLOW_CELL = f"import time; time.sleep({SLOW_SECONDS})"
README_SCREENSHOT = Path(__file__).resolve().parent / "panel-screenshot.png"


@pytest.mark.timeout(180)
def test_queue_cancel_and_interrupt_from_the_panel(page, lab, artifacts):
    started = time.monotonic()

    # JupyterLab is up once its splash screen is gone and the launcher shows.
    page.locator("#jupyterlab-splash").wait_for(state="detached")
    launcher_card = page.locator('.jp-LauncherCard[data-category="Notebook"][title^="Python 3"]')
    expect(launcher_card).to_be_visible()

    # Open the Kernel Sessions panel from its left-sidebar tab.
    tab = page.locator('.jp-SideBar [data-id="session-ext:panel"]')
    expect(tab).to_have_attribute("title", "Kernel Sessions")
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")
    panel = page.locator('[id="session-ext:panel"]')
    expect(panel).to_be_visible()
    expect(panel.locator(".jp-SessionExt-connection")).to_have_attribute("data-state", "open")
    expect(panel.locator(".jp-SessionExt-empty")).to_have_text("No kernel sessions.")

    # A new notebook with the Python 3 kernel, from the launcher.
    launcher_card.click()
    expect(page.locator(".jp-NotebookPanel:visible")).to_have_count(1)
    expect(cells(page)).to_have_count(1)
    row = panel.locator(".jp-SessionExt-session").filter(
        has=page.locator(".jp-SessionExt-path", has_text=re.compile(r"^Untitled\.ipynb$"))
    )
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-mode", "notebook")
    expect(row).to_have_attribute("data-status", "idle")  # the kernel started
    session_id = row.get_attribute("data-session-id")
    (js_session,) = lab.ok("GET", "/api/sessions")
    assert js_session["id"] == session_id, "the row is not the notebook's jupyter_server session"
    assert js_session["path"] == "Untitled.ipynb"
    expect(row.locator(".jp-SessionExt-name")).to_have_text(
        "Python 3 (ipykernel)"
    )  # the kernel; the path is beside it
    expect(row.locator(".jp-SessionExt-language")).to_have_text(re.compile("^python$", re.I))
    expect(row.locator(".jp-SessionExt-queueLength")).to_have_text("0")
    status_item = page.locator(f'.jp-SessionExt-statusItem[data-session-id="{session_id}"]')
    expect(status_item.locator(".jp-SessionExt-statusQueue")).to_have_text("0 queued")
    print(f"notebook session {session_id} ready after {time.monotonic() - started:.1f}s")

    # A slow cell, then two quick ones, each run with Shift+Enter: the last two wait.
    slow_cell = run_in_new_cell(page, SLOW_CELL)
    queued_at = time.monotonic()
    a_cell = run_in_new_cell(page, "a = 1\nc = 3")  # the panel lists first lines
    b_cell = run_in_new_cell(page, "b = 2")

    expect(row).to_have_attribute("data-status", "busy")
    expect(row.locator(".jp-SessionExt-activeCell")).to_have_text(f"▶ {SLOW_CELL}")
    expect(row.locator(".jp-SessionExt-queueLength")).to_have_text("2")
    # The status bar item of the focused notebook shows the queue length too.
    expect(status_item).to_have_attribute("data-status", "busy")
    expect(status_item.locator(".jp-SessionExt-statusQueue")).to_have_text("2 queued")
    toggle = row.locator('[data-action="toggle-queue"]')
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    queued = row.locator(".jp-SessionExt-queuedCell")
    expect(queued).to_have_text(["a = 1", "b = 2"])
    # The server agrees: two pending requests behind the running one.
    queue = lab.ok("GET", f"/supervisor/sessions/{session_id}")["execution_queue"]
    assert queue["length"] == 2, queue
    page.screenshot(path=artifacts / "1-busy-with-2-queued.png")
    assert time.monotonic() - queued_at < SLOW_SECONDS, "too slow: the slow cell may be done"

    # Cancel `b = 2` from the panel.
    b_item = queued.filter(has_text="b = 2")
    b_item.locator('[data-action="cancel"]').click()
    expect(queued).to_have_text(["a = 1"])
    expect(row.locator(".jp-SessionExt-queueLength")).to_have_text("1")
    expect(status_item.locator(".jp-SessionExt-statusQueue")).to_have_text("1 queued")
    expect(page.locator(".jp-Dialog")).to_have_count(0)  # no error dialog
    elapsed = time.monotonic() - queued_at
    assert elapsed < SLOW_SECONDS, f"cancelled {elapsed:.1f}s after the slow cell started"
    print(f"queued, checked and cancelled within {elapsed:.1f}s")
    page.screenshot(path=artifacts / "2-after-cancel.png")
    if os.environ.get("SESSION_EXT_UPDATE_SCREENSHOT") or not README_SCREENSHOT.exists():
        shutil.copy(artifacts / "1-busy-with-2-queued.png", README_SCREENSHOT)

    # The slow cell ends, `a = 1` runs, `b = 2` never does.
    expect(row).to_have_attribute("data-status", "idle")
    expect(row.locator(".jp-SessionExt-queueLength")).to_have_text("0")
    expect(slow_cell.locator(".jp-InputPrompt")).to_have_text("[1]:")
    expect(a_cell.locator(".jp-InputPrompt")).to_have_text("[2]:")
    expect(b_cell.locator(".jp-InputPrompt")).to_have_text("[ ]:")  # no execution count
    check = run_in_new_cell(page, "print('a' in globals(), 'b' in globals())")
    expect(check.locator(".jp-OutputArea-output")).to_have_text("True False")
    expect(check.locator(".jp-InputPrompt")).to_have_text("[3]:")

    # Another slow cell, interrupted from the panel.
    long_cell = run_in_new_cell(page, "import time; time.sleep(120)")
    expect(row).to_have_attribute("data-status", "busy")
    expect(row.locator(".jp-SessionExt-activeCell")).to_have_text("▶ import time; time.sleep(120)")
    interrupt = row.locator('[data-action="interrupt"]')
    expect(interrupt).to_be_enabled()
    interrupt.click()
    expect(long_cell.locator(".jp-OutputArea-output")).to_contain_text("KeyboardInterrupt")
    expect(row).to_have_attribute("data-status", "idle")
    expect(row.locator(".jp-SessionExt-activeCell")).to_have_count(0)
    expect(row.locator(".jp-SessionExt-status")).to_have_text(re.compile(r"^idle"))
    expect(status_item).to_have_attribute("data-status", "idle")
    expect(status_item.locator(".jp-SessionExt-statusQueue")).to_have_text("0 queued")
    expect(page.locator(".jp-Dialog")).to_have_count(0)
    page.screenshot(path=artifacts / "3-after-interrupt.png")

    # The kernel survived the interrupt.
    after = run_in_new_cell(page, "print(a + 1)")
    expect(after.locator(".jp-OutputArea-output")).to_have_text("2")
    print(f"scenario done in {time.monotonic() - started:.1f}s")
