"""Supervision: heartbeat (offline), exit detection, culling, limits, resource usage."""

import asyncio
import os
import signal


def status_event(session_id, status):
    return lambda m: (
        m.get("event") == "status" and m["session_id"] == session_id and m["status"] == status
    )


async def test_a_stopped_kernel_goes_offline_and_comes_back(api, supervisor):
    session_id = await api.started()
    events = await api.ws("events")
    ws = await api.channels(session_id)
    pid = (await api.session(session_id))["process_id"]
    os.kill(pid, signal.SIGSTOP)
    try:
        # heartbeat_timeout is 2 s in these tests (conftest)
        offline = await events.until(status_event(session_id, "offline"), timeout=6)
        assert offline["reason"] == "heartbeat timeout"
        assert await ws.until(lambda m: m.get("status", {}).get("status") == "offline")
    finally:
        os.kill(pid, signal.SIGCONT)
    back = await events.until(status_event(session_id, "idle"), timeout=6)
    assert back["reason"] == "heartbeat resumed"
    assert (await api.execute(session_id, "1+1"))["data"]["text/plain"] == "2"
    ws.close()
    events.close()
    await api.ok("POST", f"sessions/{session_id}/kill")


async def test_kernel_death_is_reported_everywhere(api):
    session_id = await api.started()
    events = await api.ws("events")
    ws = await api.channels(session_id)
    pid = (await api.session(session_id))["process_id"]
    os.kill(pid, signal.SIGKILL)
    exited = await ws.until(lambda m: "exited" in m, timeout=3)
    assert exited["exited"] == -9
    await events.until(status_event(session_id, "exited"), timeout=3)
    model = await api.session(session_id)
    assert model["status"] == "exited" and model["exit_code"] == -9
    ws.close()
    events.close()


async def test_idle_cull_takes_only_idle_sessions(api, supervisor):
    idle = await api.started()
    busy = await api.started()
    task = asyncio.ensure_future(api.execute(busy, "import time; time.sleep(4)"))
    await api.wait_status(busy, "busy")
    supervisor.config.cull_idle_timeout = 1
    model = await api.wait_status(idle, "exited", timeout=10)
    assert model["reason"] == "culled"
    assert (await api.session(busy))["status"] == "busy"
    supervisor.config.cull_idle_timeout = 0
    assert (await task)["status"] == "ok"
    await api.ok("POST", f"sessions/{busy}/kill")


async def test_busy_cull_takes_only_busy_sessions(api, supervisor):
    idle = await api.started()
    busy = await api.started()
    task = asyncio.ensure_future(api.execute(busy, "import time; time.sleep(30)"))
    await api.wait_status(busy, "busy")
    supervisor.config.cull_busy_timeout = 1
    model = await api.wait_status(busy, "exited", timeout=15)
    assert model["reason"] == "culled"
    assert (await task)["status"] == "aborted"
    assert (await api.session(idle))["status"] == "idle"
    supervisor.config.cull_busy_timeout = 0
    await api.ok("POST", f"sessions/{idle}/kill")


async def test_connected_sessions_are_not_culled_unless_asked(api, supervisor):
    session_id = await api.started()
    ws = await api.channels(session_id)
    supervisor.config.cull_idle_timeout = 1
    await asyncio.sleep(2)
    assert (await api.session(session_id))["status"] == "idle"
    supervisor.config.cull_connected = True
    await api.wait_status(session_id, "exited", timeout=10)
    supervisor.config.cull_idle_timeout = 0
    ws.close()


async def test_max_sessions(api, supervisor):
    supervisor.config.max_sessions = 2
    await api.create()
    await api.create()
    r = await api.call("PUT", "sessions", {"kernel_name": "python3"})
    assert r.code == 409 and r.json["code"] == "too_many_sessions" and "2" in r.json["message"]


async def test_resource_usage_is_sampled_and_streamed(api, supervisor):
    session_id = await api.started()
    events = await api.ws("events")
    ws = await api.channels(session_id)
    supervisor.config.resource_sample_interval_ms = 200
    usage = await ws.until(lambda m: "resourceUsage" in m, timeout=5)
    sample = usage["resourceUsage"]
    assert sample["memory_bytes"] > 10_000_000 and sample["thread_count"] >= 1
    assert sample["sampling_period_ms"] == 200
    event = await events.until(lambda m: m.get("event") == "resource_usage", timeout=5)
    assert event["session_id"] == session_id
    model = await api.session(session_id)
    assert model["resource_usage"]["memory_bytes"] > 0
    # CPU shows up while the kernel works
    busy = asyncio.ensure_future(
        api.execute(session_id, "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass")
    )
    busy_sample = await ws.until(
        lambda m: m.get("resourceUsage", {}).get("cpu_percent", 0) > 30, timeout=10
    )
    assert busy_sample["resourceUsage"]["cpu_percent"] <= 200
    await asyncio.wait_for(busy, 10)
    supervisor.config.resource_sample_interval_ms = 0
    ws.close()
    events.close()
    await api.ok("POST", f"sessions/{session_id}/kill")
