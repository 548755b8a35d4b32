"""Our responses against Kallichore's own interface description (../shared/reference): a
Kallichore client must be able to read every model we send. Skipped in a plain clone, where
the reference is absent; required in CI."""

from ..support.helpers import kallichore_reference


async def test_server_status_and_session_list_read_as_kallichore(api):
    ref = kallichore_reference()
    ref.validate_schema("serverStatus", await api.ok("GET", "status"))
    ref.validate_schema("sessionList", await api.ok("GET", "sessions"))


async def test_session_models_read_as_kallichore(api):
    ref = kallichore_reference()
    session_id = await api.create(tags=["a"], metadata={"owner": {"team": 1}})
    ref.validate_schema("activeSession", await api.session(session_id))
    ref.validate_schema("sessionList", await api.ok("GET", "sessions"))
    await api.ok("POST", f"sessions/{session_id}/start", timeout=60)
    running = await api.session(session_id)
    assert running["status"] == "idle"
    ref.validate_schema("activeSession", running)
    ref.validate_schema("serverStatus", await api.ok("GET", "status"))
    await api.ok("DELETE", f"sessions/{session_id}", params={"force": "true"})
