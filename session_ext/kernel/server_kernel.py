"""A kernel of jupyter_server's own: a notebook's or a console's, started, restarted and shut
down by the server's MappingKernelManager. We only connect to it (``wait_for_server_kernel``,
then the handshake); the server lists it in /api/kernels, watches its activity, and reaps it.
"""

from __future__ import annotations

from jupyter_core.utils import ensure_async

from session_ext.kernel import provisioning
from session_ext.kernel.process import KernelProcess


class ServerKernel(KernelProcess):
    async def restart(self) -> None:
        """jupyter_server restarts it (the owner then connects to the new process)."""
        await ensure_async(self.mkm.restart_kernel(self.kernel_id))

    async def _shut_down(self, now: bool) -> None:
        if self.kernel_id in self.mkm:
            provisioning.never_blocks(self.mkm.get_kernel(self.kernel_id))
            await ensure_async(self.mkm.shutdown_kernel(self.kernel_id, now=now))

    def record_state(self, execution_state: str) -> None:
        pass  # the server watches its own kernels' activity

    async def reap(self) -> None:
        pass  # the server's restarter (or its shutdown) does

    def _list(self) -> None:
        pass  # the server lists its own kernels

    def _unlist(self) -> None:
        pass

    async def _discard(self) -> None:
        pass  # a kernel that did not answer us is still the server's
