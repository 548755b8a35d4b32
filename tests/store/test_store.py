"""The session store: secrets 0600, one server per database, failures that are clear
(a startup error, or a 507 with nothing changed). Real `jupyter session-ext` processes."""

import json
import os
import resource
import sqlite3
import stat

import psutil
import pytest

from session_ext.mcp.workspaces import RECORD_KIND
from session_ext.store.database import SessionStore

from ..support.helpers import StandaloneServer


@pytest.fixture
def umask_022():
    old = os.umask(0o022)  # the servers started by the test inherit it
    yield
    os.umask(old)


def mode(path):
    return oct(stat.S_IMODE(os.stat(path).st_mode))


def assert_refuses_to_start(server, message):
    """The server exits non-zero before it listens, saying ``message``."""
    try:
        with pytest.raises(AssertionError, match="did not start"):
            server.start()
        assert server.proc.wait(30) != 0
        assert message in server.log_text()
    finally:
        server.cleanup()


def test_every_file_with_a_secret_is_0600(server, umask_022):
    server.start()
    server.ok("PUT", "sessions", {"session_id": "s", "kernel_name": "python3"})
    server.ok("POST", "sessions/s/start", timeout=60)
    kernel_id = server.ok("GET", "sessions/s")["kernel_id"]
    db = server.runtime_dir / "session_ext.db"
    paths = [db, f"{db}-wal", f"{db}-shm", f"{db}.lock", server.connection_file]
    paths += [
        server.runtime_dir / f"kernel-{kernel_id}.{ext}" for ext in ("json", "stdout", "stderr")
    ]
    assert {str(p): mode(p) for p in paths} == {str(p): "0o600" for p in paths}
    server.ok("POST", "shutdown")
    assert server.proc.wait(30) == 0


def test_a_second_server_on_one_database_refuses_to_start(server, tmp_path):
    server.start()
    server.ok("PUT", "sessions", {"session_id": "s", "kernel_name": "python3"})
    server.ok("POST", "sessions/s/start", timeout=60)
    db = server.runtime_dir / "session_ext.db"
    (tmp_path / "second").mkdir()
    second = StandaloneServer(tmp_path / "second", f"--SessionExtApp.db_path={db}")
    assert_refuses_to_start(second, f"{db} is in use by another server (pid {server.proc.pid})")
    # the first one keeps its kernel
    assert server.ok("POST", "sessions/s/execute", {"code": "6*7"})["data"]["text/plain"] == "42"
    server.ok("POST", "shutdown")
    assert server.proc.wait(30) == 0
    # and once it is gone, the database is free again
    server.start()
    assert server.ok("GET", "sessions/s")["status"] == "exited"
    server.ok("POST", "shutdown")
    server.proc.wait(30)


def test_two_non_durable_servers_of_one_user_both_start(tmp_path):
    """Two `jupyter server`s (as two `jupyter lab`s) with one runtime dir: not durable, so
    each has its own store and both start."""
    runtime = tmp_path / "a" / "runtime"
    servers = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            srv = StandaloneServer(tmp_path / name, app="server")
            srv.runtime_dir = runtime  # one user, one runtime dir
            servers.append(srv.start())
        for srv in servers:  # each its own sessions, even with the same id
            srv.ok("PUT", "sessions", {"session_id": "same", "kernel_name": "python3"})
            assert srv.ok("GET", "sessions")["total"] == 1
        assert not (runtime / "session_ext.db").exists()
    finally:
        for srv in servers:
            srv.cleanup()


def test_an_unusable_store_is_a_startup_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    db = tmp_path / "a-file" / "session_ext.db"  # its "directory" is a file
    server = StandaloneServer(tmp_path, f"--SessionExtApp.db_path={db}")
    assert_refuses_to_start(server, f"Cannot use the session database {db}")


def test_a_change_that_cannot_be_stored_is_507_and_not_made(server):
    """Writes past RLIMIT_FSIZE fail (EFBIG), as on a full disk: set on the running server."""
    server.start()
    server.ok("PUT", "sessions", {"session_id": "kept", "kernel_name": "python3"})
    process = psutil.Process(server.proc.pid)
    limits = process.rlimit(resource.RLIMIT_FSIZE)
    process.rlimit(resource.RLIMIT_FSIZE, (1, limits[1]))
    try:
        code, body = server.call(
            "PUT", "sessions", {"session_id": "lost", "kernel_name": "python3"}
        )
        assert code == 507 and body["code"] == "storage_error", body
        assert str(server.runtime_dir / "session_ext.db") in body["message"]
        code, body = server.call("DELETE", "sessions/kept")
        assert code == 507 and body["code"] == "storage_error", body
        process.rlimit(resource.RLIMIT_FSIZE, limits)  # (logging may fail while it is set)
        assert [s["session_id"] for s in server.ok("GET", "sessions")["sessions"]] == ["kept"]
        assert server.call("GET", "sessions/lost")[0] == 404
    finally:
        process.rlimit(resource.RLIMIT_FSIZE, limits)
    # the store works again, and the server kept ticking and serving
    server.ok("PUT", "sessions", {"session_id": "lost", "kernel_name": "python3"})
    server.stop()
    server.start()
    assert sorted(s["session_id"] for s in server.ok("GET", "sessions")["sessions"]) == [
        "kept",
        "lost",
    ]
    server.ok("POST", "shutdown")
    server.proc.wait(30)


async def test_named_records_are_kept_per_kind(tmp_path):
    """The record API the layers above use (MCP workspaces): saved, replaced, deleted, per
    kind, and there again for a later server."""
    store = SessionStore(str(tmp_path / "s.db"), history_size=10)
    store.open()
    await store.save_record("kind-a", "1", {"v": 1})
    await store.save_record("kind-a", "1", {"v": 2})  # replaced
    await store.save_record("kind-a", "2", {"v": 3})
    await store.save_record("kind-b", "1", {"other": True})
    await store.delete_record("kind-a", "2")
    await store.close()
    later = SessionStore(str(tmp_path / "s.db"), history_size=10)
    later.open()
    assert await later.load_records("kind-a") == [{"v": 2}]
    assert await later.load_records("kind-b") == [{"other": True}]
    assert await later.load_records("none") == []
    await later.close()


async def test_a_schema_1_database_keeps_its_mcp_workspaces(tmp_path):
    """Schema 1 kept MCP workspaces in a table of their own: a newer server finds them (their
    tokens stay valid), as records of the workspaces' kind."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE mcp_workspaces (workspace_id TEXT PRIMARY KEY, data TEXT NOT NULL)")
    record = {"workspace_id": "w", "display_name": "W", "token": "t" * 43, "port": 0}
    db.execute("INSERT INTO mcp_workspaces VALUES (?, ?)", ("w", json.dumps(record)))
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    store = SessionStore(str(path), history_size=10)
    store.open()
    assert await store.load_records(RECORD_KIND) == [record]
    await store.close()
    db = sqlite3.connect(path)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "mcp_workspaces" not in tables and db.execute("PRAGMA user_version").fetchone() == (2,)
    db.close()
