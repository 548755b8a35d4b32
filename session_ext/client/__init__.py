"""A Python client of session_ext's supervisor, asynchronous and blocking, of one shape.

```python
from session_ext.client import Supervisor

with Supervisor.discover() as sv:            # the running JupyterLab / session-ext server
    s = sv.create_session("python3", start=True)
    for output in (ex := s.execute("print(6 * 7)")):
        print(output)                        # nbformat outputs, as they arrive
    print(ex.result().status)                # the reply: ok | error | aborted
```

``AsyncSupervisor`` / ``AsyncSession`` / ``AsyncExecution`` are the same with ``await`` and
``async for``. Code runs through the session's channels websocket: it waits in the session's
queue and shows in the panel and the history like anyone else's. It imports nothing of the
server (no jupyter_server, tornado or ZeroMQ).
"""

from session_ext.client.aio import AsyncSession, AsyncSupervisor, EventStream
from session_ext.client.discovery import Endpoint, find_servers
from session_ext.client.errors import (
    ApiError,
    ChannelError,
    ClientError,
    NotFound,
    ServerNotFound,
    Unauthorized,
)
from session_ext.client.execution import AsyncExecution
from session_ext.client.models import (
    CellExecution,
    Event,
    ExecuteReply,
    ExecutionError,
    HistoryEntry,
    NotebookRun,
    QueuedRequest,
    QueueSummary,
    ServerStatus,
    SessionInfo,
)
from session_ext.client.sync import Execution, Session, Supervisor

__all__ = [
    "ApiError",
    "AsyncExecution",
    "AsyncSession",
    "AsyncSupervisor",
    "CellExecution",
    "ChannelError",
    "ClientError",
    "Endpoint",
    "Event",
    "EventStream",
    "ExecuteReply",
    "Execution",
    "ExecutionError",
    "HistoryEntry",
    "NotFound",
    "NotebookRun",
    "QueueSummary",
    "QueuedRequest",
    "ServerNotFound",
    "ServerStatus",
    "Session",
    "SessionInfo",
    "Supervisor",
    "Unauthorized",
    "find_servers",
]
