"""A JupyterLab with session_ext whose kernels run on a kernel gateway (`--gateway-url`, as
JupyterHub with Enterprise Gateway runs labs) runs cells in a real browser: with a stock
`jupyter server` as the gateway, and with `jupyter session-ext`.

Run: .venv/bin/python -m pytest -q -p no:cacheprovider tests/ui/test_gateway_lab.py
"""

from __future__ import annotations

import re

import pytest

from ..support.lab import GATEWAYS, gateway_args, running_gateway
from ..support.notebook_page import cells, run_in_new_cell

expect = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is missing"
).expect


@pytest.fixture(params=sorted(GATEWAYS))
def gateway(request, tmp_path_factory):
    with running_gateway(request.param, tmp_path_factory.mktemp("gateway")) as server:
        yield server


@pytest.fixture
def lab_args(gateway):
    return gateway_args(gateway)


@pytest.mark.timeout(180)
def test_a_lab_on_a_gateway_runs_cells(page, lab, gateway, artifacts):
    page.locator("#jupyterlab-splash").wait_for(state="detached")
    card = page.locator('.jp-LauncherCard[data-category="Notebook"][title^="Python 3"]')
    expect(card).to_be_visible()
    card.click()
    expect(page.locator(".jp-NotebookPanel:visible")).to_have_count(1)
    expect(cells(page)).to_have_count(1)
    expect(
        page.locator(".jp-StatusBar-TextItem", has_text="Python 3 (ipykernel) | Idle")
    ).to_have_count(1)

    first = run_in_new_cell(page, "x = 6 * 7\nprint(x)")
    expect(first.locator(".jp-OutputArea-output")).to_have_text("42")
    expect(first.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[1\]"))
    second = run_in_new_cell(page, "print(x + 1)")
    expect(second.locator(".jp-OutputArea-output")).to_have_text("43")

    # The kernel is the gateway's; the lab's own supervisor says where the kernels are.
    (kernel,) = gateway.ok("GET", "/api/kernels")
    assert lab.ok("GET", "/api/kernels")[0]["id"] == kernel["id"]
    # one page, one connection: the one the browser refused at first was closed (stock
    # jupyter_server leaves it open, so the gateway counts 2 and never culls the kernel)
    assert kernel["connections"] == 1
    assert lab.ok("GET", "/supervisor/status")["gateway"] == {"url": gateway.base_url}
    page.screenshot(path=artifacts / "gateway-lab.png")
