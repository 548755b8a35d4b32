"""How a session's kernel is made: its kernelspec, its program check, its environment and
its kernel manager (of the server's configured class, so the server's settings apply).

Process control stays jupyter_client's: nothing here Popens a kernel.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from jupyter_client.kernelspec import KernelSpec, NoSuchKernel

from session_ext.core import internals
from session_ext.core.errors import KERNEL_PATH_NOT_FOUND, SupervisorError
from session_ext.core.spec import SessionSpec, apply_env_actions

# Never handed to a kernel: they would let kernel code act as the server's user on the API
# (and GP_SOCKET_TIMEOUT is the server's setting for gateway-provisioners: internals.py).
SERVER_ENV = ("JUPYTER_TOKEN", "JPY_API_TOKEN", "JPY_SESSION_NAME", "GP_SOCKET_TIMEOUT")


def load_kernelspec(kernel_spec_manager: Any, name: str) -> KernelSpec:
    try:
        return kernel_spec_manager.get_kernel_spec(name)
    except NoSuchKernel:
        raise SupervisorError(400, KERNEL_PATH_NOT_FOUND, f"No kernelspec named {name!r}") from None


def check_program(
    argv: list[str], env: dict[str, str], cwd: str, on_this_machine: bool = True
) -> None:
    """argv[0] must be an executable file or found on PATH (Kallichore's KS-19) — when the
    kernel runs on this machine: a remote provisioner runs argv on its own host."""
    if not argv:
        raise SupervisorError(
            400, KERNEL_PATH_NOT_FOUND, "The session has no argv to start (adopt a kernel instead)"
        )
    if not on_this_machine:
        return
    program = argv[0]
    if os.sep in program:
        path = program if os.path.isabs(program) else os.path.join(cwd, program)
        found = os.path.isfile(path) and os.access(path, os.X_OK)
    else:
        found = shutil.which(program, path=env.get("PATH")) is not None
    if not found:
        raise SupervisorError(400, KERNEL_PATH_NOT_FOUND, f"Kernel program not found: {program!r}")


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
    internals.set_kernel_spec(km, kernel_spec)
    km.kernel_id = kernel_id
    # The supervisor reports an exit (status `exited`) instead of silently restarting.
    km.autorestart = False
    return km


def session_kernel_manager(
    multi_kernel_manager: Any,
    kernel_id: str,
    spec: SessionSpec,
    named: bool = True,
    kernelspec_required: bool = True,
) -> Any:
    """A kernel manager for a session's kernel: from its named kernelspec (``named``; one
    that was removed is an error only if ``kernelspec_required``) with the session's argv."""
    mkm = multi_kernel_manager
    name = spec.kernel_name if named else None
    base = None
    if name:
        try:
            base = load_kernelspec(mkm.kernel_spec_manager, name)
        except SupervisorError:
            if kernelspec_required:
                raise
    return new_kernel_manager(mkm, kernel_id, build_kernel_spec(spec, base), name)


def kernel_env(actions: list[dict[str, str]], secrets: tuple[str, ...]) -> dict[str, str]:
    """The server's environment without its secrets, with the session's env actions applied."""
    base = {k: v for k, v in os.environ.items() if v not in secrets and k not in SERVER_ENV}
    return apply_env_actions(base, actions)
