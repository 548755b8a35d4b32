"""The supervisor's settings (from SessionExtApp's traits)."""

from __future__ import annotations

from dataclasses import dataclass

# Kallichore's log levels (its --log-level, ServerConfiguration.log_level) as Python's level
# names (which ``logging`` and traitlets' log_level both take).
LOG_LEVELS = {"trace": "DEBUG", "debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR"}


@dataclass
class SupervisorConfig:
    """The supervisor's settings (from SessionExtApp's traits; a few change at run time
    through /server_configuration)."""

    runtime_dir: str
    server_root: str
    username: str
    keep_kernels_on_shutdown: bool = False
    buffer_max_messages: int = 10_000
    buffer_max_bytes: int = 64 * 1024 * 1024
    heartbeat_interval: float = 2.0
    heartbeat_timeout: float = 5.0
    shutdown_wait: float = 5.0
    history_size: int = 1000
    max_cell_output_bytes: int = 2 * 1024 * 1024
    max_notebook_output_bytes: int = 32 * 1024 * 1024
    max_sessions: int = 0
    allow_argv: str = "any"
    resource_sample_interval_ms: int = 1000
    idle_shutdown_hours: int = -1
    cull_idle_timeout: float = 0
    cull_busy_timeout: float = 0
    cull_connected: bool = False
    secrets: tuple[str, ...] = ()  # values never passed into a kernel's environment
    log_level: str = "info"  # a key of LOG_LEVELS
    gateway_url: str | None = None  # the server's kernels are this kernel gateway's
