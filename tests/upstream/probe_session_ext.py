"""Run beside jupyter_server's own tests with the plugin: proves the extension was active
(its API answers, the session manager and kernel websocket are the supervised ones)."""

import json


async def test_session_ext_is_active(jp_fetch, jp_serverapp):
    status = json.loads((await jp_fetch("supervisor", "status")).body)
    assert status["sessions"] == 0 and "version" in status
    assert "SupervisedSessionManager" in type(jp_serverapp.session_manager).__name__
    assert "Supervised" in jp_serverapp.kernel_websocket_connection_class.__name__
