"""What is known of a kernel's process through its provisioner: whether it is a local process
of ours, its local pid and exit code (none for a remote kernel), where it runs, and what a
later server needs to re-attach to it (durable mode).

"Local" means jupyter_client's ``LocalProvisioner`` (or a subclass): a Popen on this machine.
Every other provisioner (gateway-provisioners' SSH, Kubernetes, Docker, YARN ones) may run
the kernel anywhere; its ``pid``, if any, is a pid on that host, and what session_ext does
with local processes (launch arguments, output files, argv check, cwd, resource sampling,
exit codes) does not apply to it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import psutil
from jupyter_client.provisioning import KernelProvisionerFactory, LocalProvisioner

from session_ext.core import internals


def factory(multi_kernel_manager: Any) -> KernelProvisionerFactory:
    """jupyter_client's provisioner factory, configured as the kernel managers use it."""
    return KernelProvisionerFactory.instance(parent=multi_kernel_manager)


def provisioner_name(kernel_spec: Any, multi_kernel_manager: Any) -> str:
    """The name of the provisioner jupyter_client launches ``kernel_spec`` with."""
    stanza = (kernel_spec.metadata or {}).get("kernel_provisioner") or {}
    return stanza.get("provisioner_name") or factory(multi_kernel_manager).default_provisioner_name


def launches_locally(kernel_spec: Any, multi_kernel_manager: Any) -> bool:
    """Whether ``kernel_spec``'s provisioner runs the kernel as a local process (decided
    before launching: only such a provisioner takes Popen's arguments). An unknown
    provisioner is not local; launching then fails with jupyter_client's own message."""
    name = provisioner_name(kernel_spec, multi_kernel_manager)
    entry = factory(multi_kernel_manager).provisioners.get(name)
    try:
        cls = entry.load() if entry is not None else None
    except Exception:
        return False
    return isinstance(cls, type) and issubclass(cls, LocalProvisioner)


def is_local(km: Any) -> bool:
    """Whether ``km``'s kernel is a local process of ours."""
    return isinstance(km.provisioner, LocalProvisioner)


def never_blocks(km: Any) -> None:
    """No call of ``km``'s provisioner may block the event loop: gateway-provisioners' wait
    for a process of its own would (internals.py; it is ended after the kernel manager's
    ``shutdown_wait_time`` instead)."""
    if km.provisioner is not None:
        internals.gateway_provisioner_reaps_in_background(km.provisioner, km.shutdown_wait_time)


def local_process(km: Any) -> Any:
    """The provisioner's Popen (or ReattachedProcess), when it has a local one."""
    return km.provisioner.process if is_local(km) else None


# A remote provisioner's poll is a network round trip (gateway-provisioners: a TCP connection
# to the launcher's listener beside the kernel): asked at most this often (s) by the exit watch,
# and one that does not answer in time counts as running (the heartbeat tells the rest).
REMOTE_POLL_INTERVAL = 2.0
REMOTE_POLL_TIMEOUT = 1.0


async def poll(km: Any) -> int | None:
    """The provisioner's poll: None while the kernel runs (or a remote one does not say)."""
    if is_local(km):
        return await km.provisioner.poll()
    try:
        return await asyncio.wait_for(km.provisioner.poll(), REMOTE_POLL_TIMEOUT)
    except asyncio.TimeoutError:
        return None


class ExitWatch:
    """Whether a kernel's process has exited, for the housekeeping tick (every 250 ms): a
    local provisioner is asked each time, a remote one every REMOTE_POLL_INTERVAL s."""

    def __init__(self) -> None:
        self._next_remote_poll = 0.0

    async def exited(self, km: Any) -> bool:
        if not is_local(km):
            now = time.monotonic()
            if now < self._next_remote_poll:
                return False
            self._next_remote_poll = now + REMOTE_POLL_INTERVAL
        return await poll(km) is not None


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


def provisioner_pid(km: Any) -> int | None:
    """The kernel's process id as its provisioner reports it: on whichever host it runs."""
    pid = getattr(km.provisioner, "pid", None) if km.provisioner is not None else None
    return pid if isinstance(pid, int) and pid > 0 else None


def process_key(km: Any) -> tuple:
    """What tells a kernel's process from the next one of the same kernel manager (after a
    restart): its pid where it runs (a remote provisioner may have none) and its ports."""
    return (provisioner_pid(km), km.shell_port, km.iopub_port, km.control_port)


def local_pid(km: Any) -> int | None:
    """The kernel's local process id, when its provisioner has one (not for remote ones)."""
    return provisioner_pid(km) if is_local(km) else None


def placement(km: Any, info: dict[str, Any] | None) -> dict[str, Any]:
    """Where the kernel runs, for the API: the provisioner's name, whether it is a local
    process, the host a remote provisioner put it on (gateway-provisioners say it in their
    info as ``assigned_host``/``assigned_ip``) and its pid there."""
    info = info or {}
    local = is_local(km)
    host = None
    if not local:
        host = info.get("assigned_host") or info.get("assigned_ip") or info.get("ip")
    return {
        "name": provisioner_name(km.kernel_spec, km.parent),
        "local": local,
        "host": host or None,
        "pid": provisioner_pid(km),
    }


async def provisioner_info(km: Any) -> dict[str, Any] | None:
    """What a later server needs to re-attach to this kernel's process (jupyter_client's
    ``get_provisioner_info``, plus the process start time against pid reuse)."""
    provisioner = km.provisioner
    if provisioner is None:
        return None
    info = await provisioner.get_provisioner_info()
    info["provisioner_class"] = f"{type(provisioner).__module__}.{type(provisioner).__qualname__}"
    pid = info.get("pid")
    if isinstance(pid, int) and is_local(km):
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
    needs of a Popen, by pid. Not our child, so its exit code is unknown (``exit_code_of``)."""

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
        provisioner = factory(km.parent).create_provisioner_instance(
            km.kernel_id, km.kernel_spec, parent=km
        )
    await provisioner.load_provisioner_info(info)
    km.provisioner = provisioner


def exit_code(km: Any) -> int | None:
    """The kernel's exit code, when the provisioner knows it."""
    return exit_code_of(local_process(km))


def exit_code_of(process: Any) -> int | None:
    """A local process's exit code (None while it runs); never known for a re-attached one,
    which is not our child (its ``returncode`` only says that it has gone)."""
    if process is None or isinstance(process, ReattachedProcess):
        return None
    return process.returncode
