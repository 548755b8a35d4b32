"""Fixtures of the browser tests: a real `jupyter lab` subprocess with session_ext and its
labextension, and Debian's chromium driven by Playwright (never a downloaded browser).

Every wait has a timeout: the server start (LAB_START_TIMEOUT), each Playwright action and
assertion (DEFAULT_TIMEOUT_MS), the shutdown (LAB_STOP_TIMEOUT); pytest-timeout bounds each
test as a whole (see the ``timeout`` marks of the tests).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from ..support.lab import LabServer, free_port  # noqa: F401 (the tests import them from here)

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts"  # git-ignored; screenshots, server log, browser console
CHROMIUM = os.environ.get("SESSION_EXT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
DEFAULT_TIMEOUT_MS = 30_000  # every Playwright action and expect()
VIEWPORT = {"width": 1280, "height": 760}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def failed(request) -> bool:
    return any(
        getattr(request.node, f"report_{when}", None) is not None
        and getattr(request.node, f"report_{when}").failed
        for when in ("setup", "call")
    )


@pytest.fixture
def artifacts(request) -> Path:
    """tests/ui/artifacts/<test name>/ (emptied first)."""
    path = ARTIFACTS / request.node.name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# JupyterLab as users have it: nothing disabled (its debugger's control-channel requests
# right after connecting must not disturb the session's status).
DISABLED_LAB_EXTENSIONS: tuple[str, ...] = ()


@pytest.fixture
def lab_args() -> tuple[str, ...]:
    """More command line options of the `lab` fixture's server (a test module may override)."""
    return ()


@pytest.fixture
def lab(tmp_path, artifacts, lab_args):
    """A running `jupyter lab`; stopped, with its kernels, at the end whatever happens."""
    server = LabServer(tmp_path, DISABLED_LAB_EXTENSIONS, args=lab_args)
    try:
        yield server.start()
    finally:
        server.stop()
        if server.log_path.exists():
            shutil.copy(server.log_path, artifacts / "jupyter-lab.log")


@pytest.fixture
def sync_api():
    """playwright.sync_api, with expect()'s timeout set. Both it and chromium are part of
    the test set-up (`make test` installs them): missing is a failure, not a skip."""
    from playwright import sync_api as api

    assert os.access(CHROMIUM, os.X_OK), f"no chromium at {CHROMIUM} (make chromium)"
    api.expect.set_options(timeout=DEFAULT_TIMEOUT_MS)
    return api


@pytest.fixture
def page(sync_api, lab, artifacts, request):
    """A chromium page on /lab?token=…, the browser console logged to artifacts."""
    console: list[str] = []
    events: list[str] = []  # frames of the /supervisor/events websocket, as the page got them
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=DEFAULT_TIMEOUT_MS
        )
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.set_default_timeout(DEFAULT_TIMEOUT_MS)
            context.set_default_navigation_timeout(DEFAULT_TIMEOUT_MS)
            page = context.new_page()
            page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
            page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
            page.on("websocket", lambda ws: log_events(ws, events))
            page.goto(f"{lab.base_url}/lab?token={lab.token}")
            yield page
            if failed(request):
                try:
                    page.screenshot(path=artifacts / "failure.png", timeout=5_000)
                except Exception as e:
                    console.append(f"[test] failure screenshot failed: {e}")
                dump_server_state(lab, artifacts / "server-state.json")
        finally:
            (artifacts / "browser-console.log").write_text("\n".join(console) + "\n")
            (artifacts / "supervisor-events.log").write_text("\n".join(events) + "\n")
            browser.close()


def log_events(ws, events: list[str]) -> None:
    if "/supervisor/events" not in ws.url:
        return
    start = time.monotonic()

    def frame(direction):
        return lambda payload: events.append(
            f"{time.monotonic() - start:7.3f} {direction} {payload}"
        )

    events.append(f"  0.000 open {ws.url.split('?')[0]}")
    ws.on("framereceived", frame("<"))
    ws.on("framesent", frame(">"))
    ws.on("close", lambda _ws: events.append(f"{time.monotonic() - start:7.3f} closed"))


def dump_server_state(lab: LabServer, path: Path) -> None:
    """What the server thought when a test failed (best effort)."""
    state = {}
    for url in ("/api/sessions", "/supervisor/sessions"):
        try:
            state[url] = lab.call("GET", url, timeout=5)
        except OSError as e:
            state[url] = repr(e)
    path.write_text(json.dumps(state, indent=1))
