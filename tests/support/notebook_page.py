"""Driving a JupyterLab notebook in a Playwright page: its cells, typing and running them."""

from __future__ import annotations

from playwright.sync_api import expect


def cells(page):
    return page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell")


def type_in_last_cell(page, code: str) -> None:
    """Type into the notebook's last cell (Shift+Enter on the last cell adds an empty one)."""
    editor = cells(page).last.locator(".cm-content")
    editor.click()
    page.keyboard.type(code)
    expect(editor.locator(".cm-line")).to_have_text(code.split("\n"))


def run_in_new_cell(page, code: str):
    """Type code in the last (empty) cell and Shift+Enter it; returns that cell."""
    count = cells(page).count()
    cell = cells(page).nth(count - 1)
    type_in_last_cell(page, code)
    page.keyboard.press("Shift+Enter")
    expect(cells(page)).to_have_count(count + 1)  # the next empty cell, where focus now is
    return cell
