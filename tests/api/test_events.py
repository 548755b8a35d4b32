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


async def test_a_burst_of_queue_changes_is_coalesced(api):
    session_id = await api.started()
    events = await api.ws("events")
    await events.recv()
    ws = await api.channels(session_id)
    ids = [ws.execute("pass") for _ in range(200)]
    await ws.reply_to(ids[-1], timeout=60)
    await ws.idle_of(ids[-1])
    await events.until(
        lambda m: event("queue", session_id)(m) and m["length"] == 0 and m["active"] is None
    )
    queue_events = [m for m in events.received if m.get("event") == "queue"]
    assert len(queue_events) < 200 * 2  # one per loop turn, not one per change
    ws.close()
    await api.ok("POST", f"sessions/{session_id}/kill")
