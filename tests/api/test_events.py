"""The /events websocket: a snapshot first, then live session events."""


def event(name, session_id=None):
    def match(m):
        if m.get("event") != name:
            return False
        sid = m.get("session_id") or m.get("session", {}).get("session_id")
        return session_id is None or sid == session_id

    return match


async def test_snapshot_then_live_events(api):
    existing = await api.create()
    events = await api.ws("events")
    snapshot = await events.recv()
    assert snapshot["event"] == "snapshot"
    assert [s["session_id"] for s in snapshot["sessions"]] == [existing]
    api.openapi.validate_schema("SessionEvent", snapshot)

    session_id = await api.create()
    created = await events.until(event("session_created", session_id))
    assert created["session"]["status"] == "uninitialized"
    await api.ok("POST", f"sessions/{session_id}/start", timeout=60)
    starting = await events.until(event("status", session_id))
    idle = await events.until(event("status", session_id))
    assert (starting["status"], idle["status"]) == ("starting", "idle")
    assert idle["timestamp"] >= starting["timestamp"]

    ws = await api.channels(session_id)
    updated = await events.until(
        lambda m: event("session_updated", session_id)(m) and m["session"]["connected"]
    )
    assert updated["session"]["kernel_info"]["implementation"] == "ipython"
    slow = ws.execute("import time; time.sleep(1)")
    ws.execute("1")
    ws.execute("2")
    busy = await events.until(event("status", session_id))
    assert busy["status"] == "busy" and busy["reason"] == "execute_request"
    queue = await events.until(lambda m: event("queue", session_id)(m) and m["length"] == 2)
    assert queue["active"]["msg_id"] == slow and queue["pending"][0]["code"] == "1"
    await events.until(
        lambda m: event("queue", session_id)(m) and m["length"] == 0 and m["active"] is None
    )
    for frame in events.received:
        api.openapi.validate_schema("SessionEvent", frame)
    ws.close()
    await api.ok("DELETE", f"sessions/{session_id}", params={"force": "true"}, timeout=60)
    await events.until(event("session_deleted", session_id))
    events.close()


async def test_a_burst_of_queue_changes_is_coalesced(api, tmp_path):
    """200 requests queued at once behind a running cell: a handful of queue events (one per
    loop turn that brought requests), the last one with all 200, in order."""
    session_id = await api.started()
    events = await api.ws("events")
    await events.recv()
    ws = await api.channels(session_id)
    gate = tmp_path / "go"
    blocker = ws.execute(
        f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.05)"
    )
    await events.until(
        lambda m: event("queue", session_id)(m) and (m["active"] or {}).get("msg_id") == blocker
    )
    before = len(events.received)
    ids = [ws.execute(f"{i}") for i in range(200)]  # one burst, while the kernel is held up
    full = await events.until(lambda m: event("queue", session_id)(m) and m["length"] == 200)
    burst = [m for m in events.received[before:] if event("queue", session_id)(m)]
    assert len(burst) <= 10, [m["length"] for m in burst]  # not one per request
    assert [m["length"] for m in burst] == sorted(m["length"] for m in burst)
    assert full["active"]["msg_id"] == blocker
    assert [p["code"] for p in full["pending"]] == [f"{i}" for i in range(50)]  # (the first 50)
    gate.touch()
    await ws.reply_to(ids[-1], timeout=60)
    done = await events.until(
        lambda m: event("queue", session_id)(m) and m["length"] == 0 and m["active"] is None
    )
    assert done["pending"] == []
    history = await api.ok("GET", f"sessions/{session_id}/history")
    assert [h["input"] for h in history[1:]] == [f"{i}" for i in range(200)]  # none lost
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")
