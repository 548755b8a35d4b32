"""The server's configuration a client may read and change at run time
(``/server_configuration``): idle shutdown, resource sampling, the log level."""

from __future__ import annotations

import logging
from typing import Any

from session_ext.core.config import LOG_LEVELS, SupervisorConfig
from session_ext.core.validation import given


def server_configuration(config: SupervisorConfig) -> dict[str, Any]:
    return {
        "idle_shutdown_hours": config.idle_shutdown_hours,
        "resource_sample_interval_ms": config.resource_sample_interval_ms,
        "log_level": config.log_level,
    }


def update_server_configuration(config: SupervisorConfig, body: Any) -> None:
    """Apply a ServerConfigurationUpdate (all of it, or nothing when a field is invalid)."""
    changes = given("ServerConfigurationUpdate", body)
    if "idle_shutdown_hours" in changes:
        config.idle_shutdown_hours = int(changes["idle_shutdown_hours"])
    if "resource_sample_interval_ms" in changes:
        config.resource_sample_interval_ms = int(changes["resource_sample_interval_ms"])
    if "log_level" in changes:
        config.log_level = changes["log_level"]
        logging.getLogger("session_ext").setLevel(LOG_LEVELS[changes["log_level"]])
