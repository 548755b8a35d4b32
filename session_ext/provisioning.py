"""What is known of a kernel's process through its provisioner: the local pid and exit code
(none for a remote kernel), and what a later server needs to re-attach to it (durable mode).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import psutil
from jupyter_client.provisioning import KernelProvisionerFactory, LocalProvisioner


def local_process(km: Any) -> Any:
    """The provisioner's Popen, when it has a local one (for the exit code)."""
    return getattr(km.provisioner, "process", None) if km.provisioner is not None else None


def process_cwd(pid: int) -> str | None:
    """A process's working directory from /proc (a microsecond, fine on the event loop);
    None where there is no /proc (then ask psutil, off the loop)."""
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            raise  # the process has gone
        return None


async def working_directory(pid: int) -> str | None:
    """A local process's working directory; None if it has gone."""
    try:
        cwd = process_cwd(pid)
        if cwd is None:
            cwd = await asyncio.to_thread(lambda: psutil.Process(pid).cwd())
    except (OSError, psutil.Error):
        return None
    return cwd


def local_pid(km: Any) -> int | None:
    """The kernel's local process id, when its provisioner has one (not for remote ones)."""
    pid = getattr(km.provisioner, "pid", None) if km.provisioner is not None else None
    return pid if isinstance(pid, int) else None


async def provisioner_info(km: Any) -> dict[str, Any] | None:
    """What a later server needs to re-attach to this kernel's process (jupyter_client's
    ``get_provisioner_info``, plus the process start time against pid reuse)."""
    provisioner = km.provisioner
    if provisioner is None:
        return None
    info = await provisioner.get_provisioner_info()
    info["provisioner_class"] = f"{type(provisioner).__module__}.{type(provisioner).__qualname__}"
    pid = info.get("pid")
    if isinstance(pid, int):
        try:
            info["create_time"] = psutil.Process(pid).create_time()
        except psutil.Error:
            pass
    return jsonable(info)


def jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode()
    return value


class ReattachedProcess:
    """A kernel process started by an earlier server (durable mode): what LocalProvisioner
    needs of a Popen, by pid. Not our child, so its exit code is unknown."""

    exit_code_known = False
    stdin = stdout = stderr = None  # LocalProvisioner.wait closes these if set

    def __init__(self, pid: int, create_time: float | None):
        self.pid = pid
        self.returncode: int | None = None
        self._create_time = create_time

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                proc = psutil.Process(self.pid)
                same = self._create_time is None or abs(proc.create_time() - self._create_time) < 1
                if not same or proc.status() == psutil.STATUS_ZOMBIE:
                    self.returncode = -1
            except psutil.Error:
                self.returncode = -1
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError
            time.sleep(0.05)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ReattachedLocalProvisioner(LocalProvisioner):
    """LocalProvisioner for a kernel process an earlier server started."""

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        await super().load_provisioner_info(provisioner_info)
        self.process = ReattachedProcess(self.pid, provisioner_info.get("create_time"))


async def reattach_provisioner(km: Any, info: dict[str, Any]) -> None:
    """Give ``km`` a provisioner for the running kernel described by ``info``."""
    if info.get("provisioner_class", "").endswith("LocalProvisioner"):
        provisioner = ReattachedLocalProvisioner(
            kernel_id=km.kernel_id, kernel_spec=km.kernel_spec, parent=km
        )
    else:  # a remote provisioner knows how to reconnect from its own info
        provisioner = KernelProvisionerFactory.instance(parent=km.parent).create_provisioner_instance(
            km.kernel_id, km.kernel_spec, parent=km
        )
    await provisioner.load_provisioner_info(info)
    km.provisioner = provisioner


def exit_code(km: Any) -> int | None:
    """The kernel's exit code, when the provisioner knows it."""
    process = local_process(km)
    if process is None or not getattr(process, "exit_code_known", True):
        return None
    return process.returncode
