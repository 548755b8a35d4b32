"""The session lifecycle over REST: create, start, restart, interrupt, kill, delete, adopt."""

import asyncio
import json
import os
import sys

import psutil
import pytest
from jupyter_client.manager import AsyncKernelManager

from ..support.helpers import IPYKERNEL_ARGV, adopt_body

KERNELS_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "kernels")


async def test_status_and_empty_list(api):
    status = await api.ok("GET", "status")
    assert status["sessions"] == 0 and status["active"] == 0 and status["busy"] is False
    assert status["process_id"] == os.getpid()
    assert await api.ok("GET", "sessions") == {"total": 0, "sessions": []}


async def test_new_session_defaults_from_kernelspec(api, jp_root_dir):
    session_id = await api.create(tags=["a", "b"], metadata={"owner": {"team": 1}})
    model = await api.session(session_id)
    assert model["status"] == "uninitialized"
    assert model["kernel_name"] == "python3"
    assert model["language"] == "python"
    assert model["argv"][-1] == "{connection_file}"
    assert model["interrupt_mode"] == "signal"
    assert model["session_mode"] == "console"
    assert model["input_prompt"] == ">>> " and model["continuation_prompt"] == "... "
    assert model["working_directory"] == str(jp_root_dir)
    assert model["tags"] == ["a", "b"] and model["metadata"] == {"owner": {"team": 1}}
    assert model["process_id"] is None and model["connected"] is False
    assert model["execution_queue"] == {"active": None, "length": 0, "pending": []}


async def test_post_creates_too_and_generates_an_id(api):
    r = await api.call("POST", "sessions", {"kernel_name": "python3"})
    assert r.code == 200 and len(r.json["session_id"]) >= 8


@pytest.mark.parametrize(
    "body, field",
    [
        ({"kernel_name": 3}, "kernel_name"),
        ({"kernel_name": "python3", "session_mode": "window"}, "session_mode"),
        ({"kernel_name": "python3", "interrupt_mode": "poke"}, "interrupt_mode"),
        ({"kernel_name": "python3", "env": {"A": "1"}}, "env"),
        (
            {"kernel_name": "python3", "env": [{"action": "set", "name": "A", "value": "1"}]},
            "env[0].action",
        ),
        ({"kernel_name": "python3", "argv": "python"}, "argv"),
        ({"kernel_name": "python3", "session_id": "has space"}, "session_id"),
        ({"kernel_name": "python3", "session_id": "x" * 257}, "session_id"),
        ({"kernel_name": "python3", "session_id": "trailing\n"}, "session_id"),
        ({"kernel_name": "python3", "tags": [1]}, "tags"),
        ({"kernel_name": "python3", "connection_timeout": "soon"}, "connection_timeout"),
        ({"kernel_name": "python3", "working_directory": "/no/such/dir"}, "working_directory"),
        ({"argv": IPYKERNEL_ARGV, "language": "python"}, "display_name"),
        ({"kernel_name": "python3", "startup_environment": "command"}, "startup_environment_arg"),
    ],
)
async def test_new_session_bad_fields_are_400_naming_the_field(api, body, field):
    r = await api.call("PUT", "sessions", body)
    assert r.code == 400, r
    assert field in r.json["message"]
    assert (await api.ok("GET", "sessions"))["total"] == 0


async def test_malformed_and_missing_bodies(api):
    r = await api.call("PUT", "sessions", raw=b"{not json")
    assert r.code == 400 and "JSON" in r.json["message"]
    r = await api.call("PUT", "sessions", raw=b"")
    assert r.code == 400
    r = await api.call("PUT", "sessions", [1, 2])
    assert r.code == 400 and "object" in r.json["message"]


async def test_duplicate_id_and_unknown_program_and_kernelspec(api):
    await api.create(session_id="dup")
    r = await api.call("PUT", "sessions", {"session_id": "dup", "kernel_name": "python3"})
    assert r.code == 400 and r.json["code"] == "KS-0"
    r = await api.call("PUT", "sessions", {"kernel_name": "no-such-kernel"})
    assert r.code == 400 and r.json["code"] == "KS-19"
    for program in ("/no/such/program", "no-such-program-on-path"):
        r = await api.call(
            "PUT",
            "sessions",
            {
                "session_id": "missing",
                "argv": [program, "{connection_file}"],
                "display_name": "x",
                "language": "x",
            },
        )
        assert r.code == 400 and r.json["code"] == "KS-19" and program in r.json["message"], r
    assert [s["session_id"] for s in (await api.ok("GET", "sessions"))["sessions"]] == ["dup"]


async def test_a_program_gone_since_creation_is_ks19_at_start(api, tmp_path):
    program = tmp_path / "kernel"
    program.write_text("#!/bin/sh\nexit 1\n")
    program.chmod(0o755)
    session_id = await api.create(
        argv=[str(program), "{connection_file}"], display_name="x", language="x"
    )
    program.unlink()
    r = await api.call("POST", f"sessions/{session_id}/start")
    assert r.code == 400 and r.json["code"] == "KS-19"
    model = await api.session(session_id)
    assert model["status"] == "exited"


async def test_unknown_session_and_route_are_json_404(api):
    for method, path in [
        ("GET", "sessions/nope"),
        ("DELETE", "sessions/nope"),
        ("POST", "sessions/nope/start"),
        ("POST", "sessions/nope/interrupt"),
        ("GET", "sessions/nope/connection_info"),
    ]:
        r = await api.call(method, path)
        assert r.code == 404 and r.json["code"] == "KS-1", (method, path, r)
    r = await api.call("GET", "no/such/route", validate=False)
    assert r.code == 404 and r.json["code"] == "not_found"


async def test_start_execute_and_kernel_visible_to_jupyter_server(api, jp_fetch):
    session_id = await api.create()
    info = await api.ok("POST", f"sessions/{session_id}/start", timeout=60)
    assert info["status"] == "ok" and info["language_info"]["name"] == "python"
    model = await api.session(session_id)
    assert model["status"] == "idle"
    assert model["kernel_info"]["implementation"] == "ipython"
    assert psutil.pid_exists(model["process_id"])
    kernels = json.loads((await jp_fetch("api", "kernels")).body)
    assert model["kernel_id"] in [k["id"] for k in kernels]
    reply = await api.execute(session_id, "import os; print(os.getpid()); 6*7")
    assert reply["status"] == "ok" and reply["data"] == {"text/plain": "42"}
    assert reply["output"][0]["text"].strip() == str(model["process_id"])
    r = await api.call("POST", f"sessions/{session_id}/start")
    assert r.code == 400 and r.json["code"] == "KS-2"
    await api.ok("DELETE", f"sessions/{session_id}", params={"force": "true"})


async def test_argv_session_env_actions_cwd_and_no_token(api, tmp_path, monkeypatch, jp_serverapp):
    monkeypatch.setenv("SE_APPEND", "a")
    monkeypatch.setenv("SE_PREPEND", "p")
    session_id = await api.create(
        argv=IPYKERNEL_ARGV,
        display_name="Py",
        language="python",
        working_directory=str(tmp_path),
        env=[
            {"action": "replace", "name": "SE_NEW", "value": "new"},
            {"action": "append", "name": "SE_APPEND", "value": "-end"},
            {"action": "prepend", "name": "SE_PREPEND", "value": "start-"},
        ],
    )
    await api.ok("POST", f"sessions/{session_id}/start", timeout=60)
    code = "import os; print(os.environ['SE_NEW'], os.environ['SE_APPEND'], os.environ['SE_PREPEND'], os.getcwd())"
    reply = await api.execute(session_id, code)
    assert reply["output"][0]["text"].split() == ["new", "a-end", "start-p", str(tmp_path)]
    model = await api.session(session_id)
    assert model["initial_env"]["SE_NEW"] == "new"
    token = jp_serverapp.identity_provider.token
    assert token and token not in model["initial_env"].values()
    reply = await api.execute(session_id, f"import os; print({token!r} in os.environ.values())")
    assert reply["output"][0]["text"].strip() == "False"
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_restart_with_env_and_working_directory(api, tmp_path):
    session_id = await api.started()
    await api.execute(session_id, "x = 1")
    body = {
        "working_directory": str(tmp_path),
        "env": [{"action": "replace", "name": "SE_R", "value": "yes"}],
    }
    assert await api.ok("POST", f"sessions/{session_id}/restart", body, timeout=60) is None
    model = await api.session(session_id)
    assert model["status"] == "idle"
    reply = await api.execute(
        session_id, "import os; print(os.environ.get('SE_R'), os.getcwd(), 'x' in dir())"
    )
    assert reply["output"][0]["text"].split() == ["yes", str(tmp_path), "False"]
    r = await api.call("POST", f"sessions/{session_id}/restart", {"working_directory": 5})
    assert r.code == 400 and "working_directory" in r.json["message"]
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_restart_of_uninitialized_and_exited_sessions_starts_them(api):
    session_id = await api.create()
    await api.ok("POST", f"sessions/{session_id}/restart", timeout=60)
    assert (await api.session(session_id))["status"] == "idle"
    await api.ok("POST", f"sessions/{session_id}/kill")
    assert (await api.session(session_id))["status"] == "exited"
    await api.ok("POST", f"sessions/{session_id}/restart", timeout=60)
    assert (await api.session(session_id))["status"] == "idle"
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_exited_session_can_be_started_again(api):
    session_id = await api.started()
    await api.ok("POST", f"sessions/{session_id}/kill")
    await api.ok("POST", f"sessions/{session_id}/start", timeout=60)
    assert (await api.execute(session_id, "1+1"))["data"]["text/plain"] == "2"
    await api.ok("POST", f"sessions/{session_id}/kill")


@pytest.mark.parametrize("mode", ["signal", "message"])
async def test_interrupt_ends_a_busy_loop(api, mode):
    session_id = await api.started(interrupt_mode=mode)
    assert (await api.session(session_id))["interrupt_mode"] == mode
    task = asyncio.ensure_future(api.execute(session_id, "while True: pass"))
    await api.wait_status(session_id, "busy")
    await asyncio.sleep(0.3)
    assert await api.ok("POST", f"sessions/{session_id}/interrupt") is None
    reply = await asyncio.wait_for(task, 30)
    assert reply["status"] == "error" and reply["error_name"] == "KeyboardInterrupt"
    assert (await api.execute(session_id, "'alive'"))["data"]["text/plain"] == "'alive'"
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_interrupt_and_kill_of_a_session_not_running(api):
    session_id = await api.create()
    r = await api.call("POST", f"sessions/{session_id}/interrupt")
    assert r.code == 400 and r.json["code"] == "KS-3"
    r = await api.call("POST", f"sessions/{session_id}/kill")
    assert r.code == 400 and r.json["code"] == "KS-3"


async def test_kill_and_delete(api):
    session_id = await api.started()
    pid = (await api.session(session_id))["process_id"]
    r = await api.call("DELETE", f"sessions/{session_id}")
    assert r.code == 400 and r.json["code"] == "KS-2"
    await api.ok("POST", f"sessions/{session_id}/kill")
    model = await api.session(session_id)
    assert model["status"] == "exited" and model["process_id"] is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert await api.ok("DELETE", f"sessions/{session_id}") is None
    assert (await api.call("GET", f"sessions/{session_id}")).code == 404
    # uninitialized sessions can be deleted; running ones with force
    uninit = await api.create()
    await api.ok("DELETE", f"sessions/{uninit}")
    running = await api.started()
    pid = (await api.session(running))["process_id"]
    await api.ok("DELETE", f"sessions/{running}", params={"force": "true"}, timeout=60)
    assert (await api.ok("GET", "sessions"))["total"] == 0
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_kernel_killed_from_outside_is_exited_within_a_second(api):
    session_id = await api.started()
    pid = (await api.session(session_id))["process_id"]
    os.kill(pid, 9)
    model = await api.wait_status(session_id, "exited", timeout=2)
    assert model["process_id"] is None and model["exit_code"] == -9


async def test_startup_failure_reports_exit_code_and_output(api):
    code = "import sys; print('boom out'); print('boom err', file=sys.stderr); sys.exit(3)"
    session_id = await api.create(
        argv=[sys.executable, "-c", code, "{connection_file}"],
        display_name="bad",
        language="python",
    )
    r = await api.call("POST", f"sessions/{session_id}/start", timeout=60)
    assert r.code == 500, r
    assert r.json["exit_code"] == 3
    assert "boom out" in r.json["output"] and "boom err" in r.json["output"]
    assert r.json["error"]["code"] == "KS-8"
    assert (await api.session(session_id))["status"] == "exited"


async def test_startup_timeout_kills_the_process(api):
    code = "import time; print('hanging', flush=True); time.sleep(120)"
    session_id = await api.create(
        argv=[sys.executable, "-c", code, "{connection_file}"],
        display_name="hang",
        language="python",
        connection_timeout=2,
    )
    r = await api.call("POST", f"sessions/{session_id}/start", timeout=60)
    assert r.code == 500 and r.json["error"]["code"] == "KS-7"
    assert r.json["exit_code"] is None and "hanging" in r.json["output"]
    model = await api.session(session_id)
    assert model["status"] == "exited" and model["process_id"] is None


async def test_prompts_from_positron_language_info(api):
    argv = [
        sys.executable,
        os.path.join(KERNELS_DIR, "positron_kernel.py"),
        "-f",
        "{connection_file}",
    ]
    session_id = await api.started(argv=argv, display_name="P", language="python")
    model = await api.session(session_id)
    assert model["input_prompt"] == "In> " and model["continuation_prompt"] == "..> "
    await api.ok("POST", f"sessions/{session_id}/kill")


@pytest.mark.parametrize(
    "startup_environment, arg",
    [("shell", None), ("command", "export SE_PRE=from-command"), ("script", "SCRIPT")],
)
async def test_startup_environment(api, tmp_path, startup_environment, arg):
    if arg == "SCRIPT":
        script = tmp_path / "pre.sh"
        script.write_text("export SE_PRE=from-script\n")
        arg = str(script)
    fields = {"startup_environment": startup_environment}
    if arg:
        fields["startup_environment_arg"] = arg
    session_id = await api.started(**fields)
    reply = await api.execute(session_id, "import os; print(os.environ.get('SE_PRE'))")
    expected = {"shell": "None", "command": "from-command", "script": "from-script"}
    assert reply["output"][0]["text"].strip() == expected[startup_environment]
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_adopt_a_kernel_started_elsewhere(api):
    km = AsyncKernelManager(kernel_name="python3")
    await km.start_kernel()
    try:
        session_id = await api.create(
            argv=[], display_name="adopted", language="python", interrupt_mode="message"
        )
        body = adopt_body(km)
        kernel_info = await api.ok("PUT", f"sessions/{session_id}/adopt", body, timeout=60)
        assert kernel_info["language_info"]["name"] == "python"
        model = await api.session(session_id)
        assert model["status"] == "idle" and model["process_id"] is None
        reply = await api.execute(session_id, "import os; os.getpid()")
        assert reply["data"]["text/plain"] == str(km.provisioner.pid)
        r = await api.call("PUT", f"sessions/{session_id}/adopt", {"ip": 1})
        assert r.code == 400
        r = await api.call("POST", f"sessions/{session_id}/kill")
        assert r.code == 400 and r.json["code"] == "KS-12"
        other = await api.create(argv=[], display_name="x", language="python")
        r = await api.call("PUT", f"sessions/{other}/adopt", {**body, "transport": "bogus"})
        assert r.code == 400 and "transport" in r.json["message"]
        assert (await api.session(other))["status"] == "uninitialized"
    finally:
        await km.shutdown_kernel(now=True)


async def test_connection_info(api):
    session_id = await api.create()
    r = await api.call("GET", f"sessions/{session_id}/connection_info")
    assert r.code == 400 and r.json["code"] == "KS-18"
    await api.ok("POST", f"sessions/{session_id}/start", timeout=60)
    info = await api.ok("GET", f"sessions/{session_id}/connection_info")
    assert set(info) == {
        "control_port",
        "shell_port",
        "stdin_port",
        "hb_port",
        "iopub_port",
        "signature_scheme",
        "key",
        "transport",
        "ip",
    }
    assert info["transport"] == "tcp" and isinstance(info["key"], str)
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_server_configuration(api):
    config = await api.ok("GET", "server_configuration")
    assert set(config) == {"idle_shutdown_hours", "resource_sample_interval_ms", "log_level"}
    await api.ok(
        "POST", "server_configuration", {"resource_sample_interval_ms": 250, "log_level": "debug"}
    )
    config = await api.ok("GET", "server_configuration")
    assert config["resource_sample_interval_ms"] == 250 and config["log_level"] == "debug"
    for bad in (
        {"resource_sample_interval_ms": -1},
        {"idle_shutdown_hours": 70000},
        {"log_level": "loud"},
        {"idle_shutdown_hours": "1"},
    ):
        r = await api.call("POST", "server_configuration", bad)
        assert r.code == 400, (bad, r)


async def test_client_heartbeat(api, supervisor):
    assert await api.ok("POST", "client_heartbeat", {"process_id": os.getpid()}) is None
    assert os.getpid() in supervisor.housekeeping.heartbeats
    r = await api.call("POST", "client_heartbeat", {"process_id": "me"})
    assert r.code == 400


async def test_openapi_document_is_served(api):
    r = await api.call("GET", "openapi.yaml")
    assert r.code == 200 and b"openapi:" in r.raw
    assert r.headers["Content-Type"] == "application/yaml"


@pytest.mark.parametrize("scheme", ["Bearer", "token"])
async def test_auth_header_schemes(api, jp_serverapp, scheme):
    token = jp_serverapp.identity_provider.token
    r = await api.call("GET", "sessions", headers={"Authorization": f"{scheme} {token}"})
    assert r.code == 200


async def test_auth_refusals_are_json(api):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        for method, path in [
            ("GET", "sessions"),
            ("PUT", "sessions"),
            ("GET", "status"),
            ("POST", "shutdown"),
            ("GET", "server_configuration"),
        ]:
            r = await api.call(
                method, path, {} if method != "GET" else None, headers=headers, validate=False
            )
            assert r.code == 401, (method, path, r)
            assert r.json["code"] == "unauthorized"
    with pytest.raises(Exception) as info:
        await api.ws("events", headers={})
    assert "401" in str(info.value)
