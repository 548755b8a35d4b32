"""Kernels through jupyter_client: launching, registering with the server, and the
supervisor's own ZeroMQ connection to a kernel.

Process control is jupyter_client's (the server's kernel manager class and the kernelspec's
provisioner); nothing here Popens a kernel or assumes a local process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable
from typing import Any

import psutil
import zmq
import zmq.asyncio
from jupyter_client.kernelspec import KernelSpec, NoSuchKernel
from jupyter_client.provisioning import KernelProvisionerFactory, LocalProvisioner
from jupyter_client.session import Session
from jupyter_server._tz import utcnow
from zmq.eventloop.zmqstream import ZMQStream

from .messages import InvalidSignature, KernelMessage
from .models import KERNEL_PATH_NOT_FOUND, SessionSpec, SupervisorError

log = logging.getLogger(__name__)



def load_kernelspec(kernel_spec_manager: Any, name: str) -> KernelSpec:
    try:
        return kernel_spec_manager.get_kernel_spec(name)
    except NoSuchKernel:
        raise SupervisorError(
            400, KERNEL_PATH_NOT_FOUND, f"No kernelspec named {name!r}"
        ) from None


def check_program(argv: list[str], env: dict[str, str], cwd: str) -> None:
    """argv[0] must be an executable file or found on PATH (Kallichore's KS-19)."""
    if not argv:
        raise SupervisorError(
            400, KERNEL_PATH_NOT_FOUND, "The session has no argv to start (adopt a kernel instead)"
        )
    program = argv[0]
    if os.sep in program:
        path = program if os.path.isabs(program) else os.path.join(cwd, program)
        found = os.path.isfile(path) and os.access(path, os.X_OK)
    else:
        found = shutil.which(program, path=env.get("PATH")) is not None
    if not found:
        raise SupervisorError(
            400, KERNEL_PATH_NOT_FOUND, f"Kernel program not found: {program!r}"
        )


def wrap_startup_environment(spec: SessionSpec, argv: list[str]) -> list[str]:
    """Run argv inside the user's login shell (POSIX), after a command or script if asked."""
    if spec.startup_environment == "none":
        return argv
    shell = os.environ.get("SHELL") or "/bin/sh"
    if spec.startup_environment == "shell":
        script = 'exec "$@"'
        return [shell, "-l", "-c", script, "session_ext", *argv]
    if spec.startup_environment == "command":
        script = 'eval "$1" || exit $?; shift; exec "$@"'
    else:  # script: source a file first
        script = '. "$1" || exit $?; shift; exec "$@"'
    return [shell, "-l", "-c", script, "session_ext", spec.startup_environment_arg or "", *argv]


def build_kernel_spec(spec: SessionSpec, base: KernelSpec | None) -> KernelSpec:
    """The in-memory kernelspec a session's kernel manager launches from.

    Based on the named kernelspec when there is one (its provisioner metadata included), with
    the session's argv, interrupt mode and names on top, so that jupyter_client (and
    JupyterLab's interrupt button) use what the session asked for.
    """
    fields: dict[str, Any] = base.to_dict() if base is not None else {}
    fields.update(
        argv=wrap_startup_environment(spec, spec.argv),
        display_name=spec.display_name,
        language=spec.language,
        interrupt_mode=spec.interrupt_mode,
    )
    fields.setdefault("env", {})
    fields.setdefault("metadata", {})
    if base is not None:
        fields["resource_dir"] = base.resource_dir
        fields["name"] = base.name
    return KernelSpec(**fields)


def new_kernel_manager(
    multi_kernel_manager: Any, kernel_id: str, kernel_spec: KernelSpec, kernel_name: str | None
) -> Any:
    """A kernel manager of the server's configured class, with an in-memory kernelspec."""
    mkm = multi_kernel_manager
    km = mkm.kernel_manager_factory(
        connection_file=os.path.join(mkm.connection_dir, f"kernel-{kernel_id}.json"),
        parent=mkm,
        log=mkm.log,
        kernel_name=kernel_name or "",
        kernel_spec_manager=mkm.kernel_spec_manager,
    )
    # KernelManager.kernel_spec reads this cache before asking the kernelspec manager.
    km._kernel_spec = kernel_spec
    km.kernel_id = kernel_id
    # The supervisor reports an exit (status `exited`) instead of silently restarting.
    km.autorestart = False
    return km


def register_kernel(multi_kernel_manager: Any, kernel_id: str, km: Any) -> None:
    """Make a started kernel visible in /api/kernels, so JupyterLab can attach to it.

    jupyter_server has no public call to add an already-started kernel; this does what its
    ``MappingKernelManager.start_kernel`` does after launching.
    """
    mkm = multi_kernel_manager
    mkm._kernels[kernel_id] = km
    mkm._kernel_connections.setdefault(kernel_id, 0)
    mkm._kernel_ports[kernel_id] = km.ports
    km.execution_state = "idle"
    km.reason = ""
    km.last_activity = utcnow()
    # No mkm.start_watching_activity: a second subscriber decoding every message cost a third
    # of the server's time on iopub; the session reports activity instead (record_activity).


def record_activity(multi_kernel_manager: Any, km: Any, execution_state: str) -> None:
    """What jupyter_server's activity watcher would record, for /api/kernels and its
    no-activity shutdown: the kernel's busy/idle and when it last changed."""
    km.execution_state = execution_state
    km.last_activity = multi_kernel_manager.last_kernel_activity = utcnow()


def unregister_kernel(multi_kernel_manager: Any, kernel_id: str) -> None:
    mkm = multi_kernel_manager
    if kernel_id not in mkm._kernels:
        return
    mkm.stop_watching_activity(kernel_id)
    mkm._kernels.pop(kernel_id, None)
    mkm._kernel_connections.pop(kernel_id, None)
    mkm._kernel_ports.pop(kernel_id, None)


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
        import time

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
        import signal

        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        import signal

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


class KernelConnection:
    """The supervisor's ZeroMQ sockets to one kernel: shell, control, stdin (DEALER, one
    identity), iopub (SUB), and a heartbeat watcher.

    Every verified message is handed to ``on_message``; sending signs with the kernel's key.
    """

    def __init__(
        self,
        km: Any,
        session: Session,
        on_message: Callable[[KernelMessage], None],
    ):
        self.km = km
        self.session = session
        self._on_message = on_message
        identity = session.bsession
        self.streams: dict[str, ZMQStream] = {
            "shell": km.connect_shell(identity=identity),
            "control": km.connect_control(identity=identity),
            "stdin": km.connect_stdin(identity=identity),
            "iopub": self._connect_iopub(km),
        }
        for channel, stream in self.streams.items():
            stream.on_recv(self._receiver(channel))
        self._heartbeat_task: asyncio.Task | None = None

    @staticmethod
    def _connect_iopub(km: Any) -> ZMQStream:
        """Like ``km.connect_iopub()``, but with no receive high-water mark: with the default
        (1000) ZeroMQ silently drops output when the server falls behind a chatty kernel, and
        a lost ``idle`` would leave the execution queue waiting forever."""
        sock = km.context.socket(zmq.SUB, socket_class=zmq.Socket)  # ZMQStream wants a plain Socket
        sock.linger = 1000
        sock.rcvhwm = 0
        if km.curve_publickey is not None:  # as jupyter_client's _create_connected_socket
            sock.curve_secretkey = km.curve_secretkey
            sock.curve_publickey = km.curve_publickey
            sock.curve_serverkey = km.curve_publickey
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(km._make_url("iopub"))
        return ZMQStream(sock)

    def _receiver(self, channel: str) -> Callable[[list[bytes]], None]:
        session, on_message = self.session, self._on_message

        def receive(msg_list: list[bytes]) -> None:
            try:
                msg = KernelMessage.from_zmq(channel, msg_list, session)
            except (InvalidSignature, ValueError) as e:
                log.warning("Dropping a bad %s message from the kernel: %s", channel, e)
                return
            on_message(msg)

        return receive

    def send(self, channel: str, msg: dict[str, Any]) -> None:
        """Sign and send; unlike Session.send this leaves ``msg`` as it was (it is queued
        and shown in ``execution_queue``)."""
        frames = self.session.serialize(msg)
        frames.extend(msg.get("buffers") or ())
        self.streams[channel].send_multipart(frames, copy=False)

    def start_heartbeat(
        self,
        interval: float,
        timeout: float,
        on_change: Callable[[bool], None],
    ) -> None:
        self._heartbeat_task = asyncio.ensure_future(self._heartbeat(interval, timeout, on_change))

    async def _heartbeat(
        self, interval: float, timeout: float, on_change: Callable[[bool], None]
    ) -> None:
        """Ping the kernel's heartbeat; ``on_change(False)`` after ``timeout`` seconds without
        an answer, ``on_change(True)`` when the late answer finally comes."""
        ctx = zmq.asyncio.Context.instance()
        url = self.km._make_url("hb")
        alive = True
        sock = ctx.socket(zmq.REQ)
        sock.linger = 0
        sock.connect(url)
        try:
            while True:
                await sock.send(b"ping")
                if await sock.poll(timeout * 1000):
                    await sock.recv()
                else:
                    if alive:
                        alive = False
                        on_change(False)
                    # Keep waiting on the same ping: a stopped kernel answers it on resume.
                    while not await sock.poll(interval * 1000):
                        pass
                    await sock.recv()
                if not alive:
                    alive = True
                    on_change(True)
                await asyncio.sleep(interval)
        except asyncio.CancelledError:
            pass
        finally:
            sock.close(linger=0)

    def close(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            self._heartbeat_task = None
        for stream in self.streams.values():
            if not stream.closed():
                stream.on_recv(None)
                stream.close(linger=0)
        self.streams.clear()
