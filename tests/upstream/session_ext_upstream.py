"""A pytest plugin for jupyter_server's own test suite (run from its sdist): enables
session_ext the way an install does, through a ``jupyter_server_config.d`` file in the
test's config directory, and with ``--session-ext-probe`` adds nothing but a fixture the
probe test (``probe_session_ext.py``) uses to prove the extension was really active."""

from __future__ import annotations

import json
import os

import pytest

# Without persistence: upstream's tests run many short servers in one process.
CONFIG = {
    "ServerApp": {"jpserver_extensions": {"session_ext": True}},
    "SessionExtApp": {"db_path": ":memory:"},
}


@pytest.fixture(autouse=True)
def _session_ext_enabled(jp_config_dir):
    """What `pip install session_ext` puts in etc/jupyter: the extension's config file."""
    config_d = os.path.join(str(jp_config_dir), "jupyter_server_config.d")
    os.makedirs(config_d, exist_ok=True)
    with open(os.path.join(config_d, "session_ext.json"), "w") as f:
        json.dump(CONFIG, f)
