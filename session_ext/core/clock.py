"""The time helpers, in one place: wall-clock milliseconds (history entries, events, queue
records), RFC 3339 timestamps (the API models) and ISO 8601 now (message headers)."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def now_ms() -> int:
    """Wall-clock time in milliseconds since the epoch."""
    return int(time.time() * 1000)


def rfc3339(ts: float | None) -> str | None:
    """A ``time.time()`` timestamp as RFC 3339 UTC (``...Z``); None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    """Now as ISO 8601 UTC (``...Z``), as a Jupyter message header's ``date``."""
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
