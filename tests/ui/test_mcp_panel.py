"""Browser test of MCP in the Kernel Sessions panel, in a real JupyterLab: the panel shows
the 'jupyter' workspace's MCP URL and copies its client configuration; an agent (the
official SDK's client) runs code in the user's notebook, and the panel marks that cell with
the agent's name while it runs."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ..support.mcp import mcp_session

expect = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is missing"
).expect


def run_agent(url: str, token: str, session_id: str, code: str) -> dict:
    """An agent's execute_code from its own thread (Playwright's sync API owns this one)."""
    outcome: dict = {}

    async def agent():
        async with mcp_session(url, token, name="ui-agent") as session:
            result = await session.call_tool(
                "execute_code", {"session_id": session_id, "code": code, "timeout_seconds": 1}
            )
            outcome.update(result.structured_content)

    def target():
        try:
            asyncio.run(asyncio.wait_for(agent(), 60))
        except BaseException as e:
            outcome["failure"] = repr(e)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(90)
    assert not thread.is_alive() and "failure" not in outcome, outcome
    return outcome


@pytest.mark.timeout(180)
def test_agent_in_the_panel(page, lab, artifacts):
    page.locator("#jupyterlab-splash").wait_for(state="detached")
    launcher_card = page.locator('.jp-LauncherCard[data-category="Notebook"][title^="Python 3"]')
    expect(launcher_card).to_be_visible()
    tab = page.locator('.jp-SideBar [data-id="session-ext:panel"]')
    tab.click()
    panel = page.locator('[id="session-ext:panel"]')
    expect(panel).to_be_visible()

    workspace = lab.ok("GET", "/supervisor/mcp/workspaces/jupyter")
    box = panel.locator(".jp-SessionExt-mcp")
    expect(box.locator(".jp-SessionExt-mcpUrl")).to_have_text(workspace["url"])
    box.locator('[data-action="copy-mcp-config"]').click()
    expect(box.locator(".jp-SessionExt-mcpCopied")).to_have_text("copied")

    launcher_card.click()
    row = panel.locator(".jp-SessionExt-session")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-status", "idle")
    session_id = row.get_attribute("data-session-id")

    outcome = run_agent(
        workspace["url"],
        workspace["token"],
        session_id,
        "import time; time.sleep(6); print('agent done')",
    )
    assert outcome["status"] == "running", outcome
    badge = row.locator(".jp-SessionExt-activeCell .jp-SessionExt-agent")
    expect(badge).to_have_attribute("data-agent", "ui-agent")
    expect(row.locator(".jp-SessionExt-activeCell")).to_contain_text("import time; time.sleep(6)")
    page.screenshot(path=artifacts / "agent-cell.png")
    expect(badge).to_have_count(0, timeout=20_000)  # done
    history = lab.ok("GET", f"/supervisor/sessions/{session_id}/history")
    assert history[-1]["source"] == "agent" and history[-1]["agent"] == "ui-agent"
    assert "agent done" in history[-1]["output"]
