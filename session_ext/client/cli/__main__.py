"""``python -m session_ext.client.cli``: the same as ``session-ext``."""

from session_ext.client.cli import entry

entry()
