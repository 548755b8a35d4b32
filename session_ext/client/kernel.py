"""A KernelManager/KernelClient pair for nbclient and papermill: a notebook runs in a
supervised session (its cells in the session's queue, visible in the panel), on this
machine's server or a remote one.

```python
from nbclient import NotebookClient
from session_ext.client.kernel import SupervisorKernelManager

NotebookClient(nb, kernel_manager_class=SupervisorKernelManager).execute()
papermill.execute_notebook("in.ipynb", "out.ipynb", kernel_manager_class=SupervisorKernelManager)
```

The server is found as by the client (``SESSION_EXT_URL``/``SESSION_EXT_TOKEN``,
``SESSION_EXT_CONNECTION_FILE``, else the running servers of this user), or configured:
``SupervisorKernelManager.server_url``, ``.server_token``, ``.server_connection_file``. Each run gets a new
session (deleted at shutdown) unless ``session_id`` names an existing one.

The client subclasses jupyter_client's ``AsyncKernelClient`` (its message building,
``wait_for_ready``, ``execute_interactive``) with channels fed by the session's websocket
instead of ZeroMQ sockets. It imports jupyter_client (and so pyzmq), never the server.
"""

from __future__ import annotations

import asyncio
import os
from queue import Empty
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Unicode

from session_ext.client import discovery
from session_ext.client.aio import AsyncSession, AsyncSupervisor
from session_ext.client.channel import SessionChannel
from session_ext.client.discovery import Endpoint
from session_ext.client.errors import NotFound

CHANNELS = ("shell", "iopub", "stdin", "control", "hb")


class SupervisorKernelManager(AsyncKernelManager):
    """Starts (or borrows) a session on a session_ext server for one notebook run.

    A jupyter_client ``KernelManager`` by type (nbclient's ``kernel_manager_class`` must be
    one), none of whose ZeroMQ or process machinery is used: every method that would start,
    signal or connect to a local kernel asks the server instead."""

    server_url = Unicode(
        "", config=True, help="The server's URL (default: found as the client finds it)."
    )
    server_token = Unicode("", config=True, help="The server's token.")
    server_connection_file = Unicode(
        "", config=True, help="The server's state file (`jupyter session-ext --connection-file`)."
    )
    session_id = Unicode(
        "", config=True, help="Run in this existing session instead of starting a new one."
    )
    session_mode = Unicode("background", config=True, help="The new session's session_mode.")
    delete_session = Bool(
        True, config=True, help="Delete the session this manager created when it shuts down."
    )
    ipykernel = False  # (a property upstream, reading a local kernelspec the server may not have)

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._endpoint: Endpoint | None = None
        self._created = False
        self._started = False

    @property
    def endpoint(self) -> Endpoint:
        if self._endpoint is None:
            self._endpoint = discovery.resolve(
                self.server_url or None,
                self.server_token or None,
                self.server_connection_file or None,
            )
        return self._endpoint

    @property
    def has_kernel(self) -> bool:
        return self._started

    def _supervisor(self) -> AsyncSupervisor:
        # One per call: nbclient may call from more than one event loop (its atexit cleanup).
        return AsyncSupervisor(self.endpoint)

    async def start_kernel(self, **kw: Any) -> None:
        """A new session with the kernelspec (in ``cwd`` if given), started; or the given
        session, started if it is not running."""
        async with self._supervisor() as sv:
            if self.session_id:
                info = await sv.get_session(self.session_id)
                if not info.running:
                    await sv.session(self.session_id).start()
            else:
                cwd = kw.get("cwd")
                session = await sv.create_session(
                    self.kernel_name or None,
                    session_mode=self.session_mode,
                    working_directory=os.path.abspath(cwd) if cwd else None,
                    display_name=kw.get("display_name"),
                    start=False,
                )
                self.session_id, self._created = session.session_id, True
                await session.start()
        self.kernel_id = self.session_id
        self._started = True

    def client(self, **kwargs: Any) -> SupervisorKernelClient:
        return SupervisorKernelClient(
            endpoint=self.endpoint, session_id=self.session_id, parent=self, **kwargs
        )

    async def is_alive(self) -> bool:  # type: ignore[override]
        if not self.session_id:
            return False
        async with self._supervisor() as sv:
            try:
                return (await sv.get_session(self.session_id)).running
            except NotFound:
                return False

    _async_is_alive = is_alive  # what jupyter_client's client asks its manager

    async def interrupt_kernel(self) -> None:
        async with self._supervisor() as sv:
            await sv.session(self.session_id).interrupt()

    async def restart_kernel(self, now: bool = False, **kw: Any) -> None:
        async with self._supervisor() as sv:
            await sv.session(self.session_id).restart()

    async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        """Delete the session this manager created (a borrowed one is left as it was)."""
        if not self.session_id or not self._started:
            return
        self._started = False
        if self._created and self.delete_session:
            async with self._supervisor() as sv:
                try:
                    await sv.session(self.session_id).delete(force=True)
                except NotFound:
                    pass

    async def cleanup_resources(self, restart: bool = False) -> None:  # type: ignore[override]
        """Nothing here holds a resource of the kernel's (no ports, no files)."""


class WebsocketChannel:
    """One of jupyter_client's channels, over the session's websocket: ``send`` writes a
    message with its channel, ``get_msg`` reads what the websocket routed here."""

    def __init__(self, name: str, session_channel: SessionChannel):
        self.name = name
        self.session_channel = session_channel
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._running = False

    def start(self) -> None:
        self._running = True

    def stop(self) -> None:
        self._running = False

    def close(self) -> None:
        self.stop()

    def is_alive(self) -> bool:
        return self._running and not self.session_channel.closed

    def is_beating(self) -> bool:  # the hb channel: the session's kernel is alive
        return not self.session_channel.closed and not self.session_channel.exited

    def pause(self) -> None:
        pass

    def unpause(self) -> None:
        pass

    def send(self, msg: dict[str, Any]) -> None:
        self.session_channel.send(
            {
                "channel": self.name,
                "header": msg["header"],
                "parent_header": msg.get("parent_header") or {},
                "metadata": msg.get("metadata") or {},
                "content": msg.get("content") or {},
                "buffers": [],
            }
        )

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            raise Empty from None

    async def get_msgs(self) -> list[dict[str, Any]]:
        msgs = []
        while not self.queue.empty():
            msgs.append(self.queue.get_nowait())
        return msgs

    async def msg_ready(self) -> bool:
        return not self.queue.empty()


class SupervisorKernelClient(AsyncKernelClient):
    """jupyter_client's AsyncKernelClient over a session's channels websocket."""

    def __init__(self, endpoint: Endpoint, session_id: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.session_id = session_id
        self._supervisor: AsyncSupervisor | None = None
        self._session: AsyncSession | None = None
        self._ws_channels: dict[str, WebsocketChannel] = {}

    async def start_channels(
        self,
        shell: bool = True,
        iopub: bool = True,
        stdin: bool = True,
        hb: bool = True,
        control: bool = True,
    ) -> None:
        self._supervisor = AsyncSupervisor(self.endpoint)
        self._session = self._supervisor.session(self.session_id)
        session_channel = await self._session.connect()
        self._ws_channels = {name: WebsocketChannel(name, session_channel) for name in CHANNELS}
        session_channel.listeners.append(self._route)
        super().start_channels(shell=shell, iopub=iopub, stdin=stdin, hb=hb, control=control)

    def _route(self, frame: dict[str, Any]) -> None:
        channel = self._ws_channels.get(frame.get("channel", ""))
        if channel is None:  # a supervisor event (kind: kernel)
            return
        header = frame.get("header") or {}
        # as jupyter_client's Session.deserialize gives them
        channel.queue.put_nowait(
            {**frame, "msg_id": header.get("msg_id"), "msg_type": header.get("msg_type")}
        )

    def stop_channels(self) -> Any:
        """Closes the websocket; awaitable (nbclient awaits it)."""
        for channel in self._ws_channels.values():
            channel.stop()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is None:
            return None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return None  # no loop: the websocket dies with its loop
        return asyncio.ensure_future(supervisor.aclose())

    @property
    def channels_running(self) -> bool:
        return any(channel.is_alive() for channel in self._ws_channels.values())

    def _channel(self, name: str) -> WebsocketChannel:
        if name not in self._ws_channels:
            raise RuntimeError("start_channels() first: the channels are the session's websocket")
        return self._ws_channels[name]

    @property
    def shell_channel(self) -> WebsocketChannel:
        return self._channel("shell")

    @property
    def iopub_channel(self) -> WebsocketChannel:
        return self._channel("iopub")

    @property
    def stdin_channel(self) -> WebsocketChannel:
        return self._channel("stdin")

    @property
    def control_channel(self) -> WebsocketChannel:
        return self._channel("control")

    @property
    def hb_channel(self) -> WebsocketChannel:
        return self._channel("hb")

    @property
    def _hb_channel(self) -> WebsocketChannel | None:  # read by jupyter_client's is_alive
        return self._ws_channels.get("hb")

    @_hb_channel.setter
    def _hb_channel(self, value: Any) -> None:
        pass  # jupyter_client's constructor sets it to None

    async def is_alive(self) -> bool:  # type: ignore[override]
        channel = self._ws_channels.get("hb")
        return channel is not None and channel.is_beating()
