"""The package's layers, as the README's Layout draws them: each subpackage imports only the
ones to its left (``core ← wire ← kernel ← session ← store ← supervisor ← {integration | api |
kallichore | mcp | client} ← app``), the top siblings never import each other, the MCP
bridge starts without the server, and the client (session_ext.client: the Python client,
the nbclient pair, the `session-ext` command line) imports nothing of the server at all."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[1] / "session_ext"
ORDER = ["core", "wire", "kernel", "session", "store", "supervisor"]
TOP = {"integration", "api", "kallichore", "mcp", "client"}


def rank(layer: str) -> int:
    if layer in ORDER:
        return ORDER.index(layer)
    if layer in TOP:
        return len(ORDER)
    return len(ORDER) + 1  # app, the package root


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else "app"  # session_ext.<layer>.<module>


def imports(path: Path) -> list[tuple[int, str]]:
    """session_ext modules imported at module level or in functions (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only or not isinstance(node, ast.ImportFrom) or node.level:
            continue
        module = node.module or ""
        if module.startswith("session_ext."):
            for alias in node.names:
                target = f"{module}.{alias.name}"
                found.append(
                    (
                        node.lineno,
                        target
                        if (
                            PACKAGE / module.split(".", 1)[1].replace(".", "/") / f"{alias.name}.py"
                        ).exists()
                        else module,
                    )
                )
    return found


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        yield path, ".".join(rel.parts)


def test_no_relative_imports():
    relative = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
        for path, _ in modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level and path.name != "__init__.py"
    ]
    assert relative == []


def test_each_layer_imports_only_those_to_its_left():
    wrong = []
    for path, module in modules():
        here = layer_of(module)
        if here == "app" or path.name == "__init__.py":
            continue
        for line, target in imports(path):
            there = layer_of(target)
            if there == here or target == "session_ext._version":
                continue
            entry_point = here == "kallichore" and there == "app"  # main() starts the app lazily
            if rank(there) >= rank(here) and not entry_point:
                wrong.append(f"{module}:{line} imports {target} ({here} -> {there})")
    assert wrong == []


def test_the_mcp_bridge_starts_without_the_server():
    """The stdio bridge loads the MCP SDK's transports, the standard library and its own few
    modules: not our MCP server, jupyter_server, tornado or ZeroMQ. (uvicorn is loaded by the
    SDK itself, mcp 2.3: ``mcp`` → ``server.streamable_http`` → sse_starlette → uvicorn; were
    a later SDK to stop, the bridge must not bring it back.)"""
    code = (
        "import json, sys; "
        "import anyio, httpx2, mcp.client.streamable_http, mcp.server.stdio; "
        "sdk = set(sys.modules); "
        "import session_ext.mcp.bridge; "
        "new = set(sys.modules) - sdk; "
        "print(json.dumps({"
        "'ours': sorted(m for m in new if m.split('.')[0] == 'session_ext'), "
        "'others': sorted({m.split('.')[0] for m in new} - set(sys.stdlib_module_names) "
        "- {'session_ext'}), "
        "'server': sorted(m for m in ('jupyter_server', 'tornado', 'zmq', 'jupyter_client') "
        "if m in sys.modules)}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(out.stdout)
    assert loaded == {
        "ours": [
            "session_ext",
            "session_ext._version",
            "session_ext.mcp",
            "session_ext.mcp.bridge",
            "session_ext.mcp.protocol",
        ],
        "others": [],
        "server": [],
    }


def test_the_client_imports_nothing_of_the_server():
    """A program that uses the client runs without jupyter_server: session_ext.client
    imports only itself and the package's version."""
    wrong = [
        f"{module}:{line} imports {target}"
        for path, module in modules()
        if layer_of(module) == "client"
        for line, target in imports(path)
        if not target.startswith("session_ext.client") and target != "session_ext._version"
    ]
    assert wrong == []


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        # the client and the command line: no server, no tornado, ZeroMQ or jupyter_client
        ("session_ext.client, session_ext.client.cli", ("tornado", "jupyter_client", "zmq")),
        # the nbclient pair is a jupyter_client KernelManager/KernelClient (and so pyzmq and
        # tornado, which jupyter_client imports)
        ("session_ext.client.kernel", ()),
    ],
)
def test_the_client_starts_without_the_server(module, absent):
    names = ("jupyter_server", "session_ext.app", "session_ext.supervisor", *absent)
    code = f"import sys, {module}; print(sorted(m for m in {names!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
