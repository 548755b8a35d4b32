"""allow_argv = kernelspecs-only: a session runs exactly an installed kernelspec's argv, on
every path that launches a process (create, start, restart, start after a restore)."""

import pytest
from jupyter_client.manager import AsyncKernelManager

from ..support.helpers import IPYKERNEL_ARGV, StandaloneServer, adopt_body


@pytest.fixture
def jp_server_config(jp_server_config):
    jp_server_config["SessionExtApp"]["allow_argv"] = "kernelspecs-only"
    return jp_server_config


def evil_pythonpath(tmp_path):
    """A directory whose sitecustomize.py (imported by every Python that has it on its
    path) creates the marker: what PYTHONPATH in a kernel's env would run."""
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    return evil, marker


async def test_argv_given_with_a_kernel_name_must_be_its_argv(api, tmp_path):
    marker = tmp_path / "pwned"
    shell = ["/bin/sh", "-c", f"touch {marker}"]
    r = await api.call(
        "PUT", "sessions", {"session_id": "sh", "kernel_name": "python3", "argv": shell}
    )
    assert r.code == 403 and r.json["code"] == "forbidden" and "python3" in r.json["message"]
    r = await api.call(
        "PUT", "sessions", {"session_id": "sh", "argv": shell, "display_name": "x", "language": "x"}
    )
    assert r.code == 403
    assert (await api.ok("GET", "sessions"))["total"] == 0
    assert not marker.exists()
    # the kernelspec's own argv, given or left out, is fine
    spec_argv = (await api.session(await api.create(kernel_name="python3")))["argv"]
    given = await api.create(kernel_name="python3", argv=spec_argv)
    assert (await api.session(given))["argv"] == spec_argv
    assert (await api.ok("GET", "sessions"))["total"] == 2


@pytest.mark.parametrize("startup_environment", ["command", "script", "shell"])
async def test_startup_environments_are_refused(api, tmp_path, startup_environment):
    marker = tmp_path / "pwned"
    script = tmp_path / "setup.sh"
    script.write_text(f"touch {marker}\n")
    arg = {"command": f"touch {marker}", "script": str(script), "shell": None}[startup_environment]
    r = await api.call(
        "PUT",
        "sessions",
        {
            "kernel_name": "python3",
            "startup_environment": startup_environment,
            "startup_environment_arg": arg,
        },
    )
    assert r.code == 403 and "startup_environment" in r.json["message"]
    assert (await api.ok("GET", "sessions"))["total"] == 0
    assert not marker.exists()


@pytest.mark.parametrize(
    "name",
    [
        "LD_PRELOAD",
        "DYLD_INSERT_LIBRARIES",
        "PATH",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "pythonhome",
        "BASH_ENV",
        "ENV",
        "NODE_OPTIONS",
    ],
)
async def test_env_that_changes_what_is_loaded_is_refused_at_create(api, name):
    r = await api.call(
        "PUT",
        "sessions",
        {
            "kernel_name": "python3",
            "env": [{"action": "replace", "name": name, "value": "/tmp/x"}],
        },
    )
    assert r.code == 403 and name in r.json["message"]
    assert (await api.ok("GET", "sessions"))["total"] == 0


async def test_restart_env_is_checked_and_other_env_is_allowed(api, tmp_path):
    evil, marker = evil_pythonpath(tmp_path)
    session_id = await api.started(env=[{"action": "replace", "name": "SE_OK", "value": "yes"}])
    reply = await api.execute(session_id, "import os; print(os.environ['SE_OK'])")
    assert reply["output"][0]["text"].strip() == "yes"
    before = await api.session(session_id)
    r = await api.call(
        "POST",
        f"sessions/{session_id}/restart",
        {
            "env": [{"action": "prepend", "name": "PYTHONPATH", "value": f"{evil}:"}],
        },
        timeout=60,
    )
    assert r.code == 403 and "PYTHONPATH" in r.json["message"]
    after = await api.session(session_id)
    assert after["process_id"] == before["process_id"] and after["status"] == "idle"
    assert after["initial_env"].get("PYTHONPATH") == before["initial_env"].get("PYTHONPATH")
    await api.ok("POST", f"sessions/{session_id}/restart", timeout=60)  # without env: fine
    assert not marker.exists()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_an_argv_session_may_still_be_made_for_adoption(api):
    """No argv launches nothing: such a session is allowed, and adopts a kernel started
    elsewhere, which then runs code."""
    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel()
    try:
        session_id = await api.create(argv=[], display_name="adopted", language="python")
        model = await api.session(session_id)
        assert model["argv"] == [] and model["status"] == "uninitialized"
        kernel_info = await api.ok(
            "PUT", f"sessions/{session_id}/adopt", adopt_body(km), timeout=60
        )
        assert kernel_info["language_info"]["name"] == "python"
        reply = await api.execute(session_id, "import os; os.getpid()")
        assert reply["data"]["text/plain"] == str(km.provisioner.pid)
        assert (await api.session(session_id))["status"] == "idle"
    finally:
        await km.shutdown_kernel(now=True)


def test_a_stored_session_is_checked_when_it_starts_again(tmp_path):
    """Created under `any`, restored by a server that only runs kernelspecs: never run."""
    evil, marker = evil_pythonpath(tmp_path)
    server = StandaloneServer(tmp_path)
    try:
        server.start()
        server.ok(
            "PUT",
            "sessions",
            {
                "session_id": "sh",
                "argv": ["/bin/sh", "-c", f"touch {marker}"],
                "display_name": "sh",
                "language": "sh",
            },
        )
        server.ok(
            "PUT",
            "sessions",
            {
                "session_id": "env",
                "kernel_name": "python3",
                "env": [{"action": "replace", "name": "PYTHONPATH", "value": str(evil)}],
            },
        )
        server.ok(
            "PUT",
            "sessions",
            {
                "session_id": "plain",
                "argv": IPYKERNEL_ARGV,
                "display_name": "py",
                "language": "python",
            },
        )
        server.stop()
        server.args.append("--SessionExtApp.allow_argv=kernelspecs-only")
        server.start()
        assert server.ok("GET", "sessions")["total"] == 3  # still listed
        for session_id in ("sh", "env", "plain"):
            for action in ("start", "restart"):
                code, body = server.call("POST", f"sessions/{session_id}/{action}", timeout=60)
                assert code == 403 and body["code"] == "forbidden", (session_id, action, body)
        assert not marker.exists()
        server.ok("POST", "shutdown")
        assert server.proc.wait(30) == 0
    finally:
        server.cleanup()
