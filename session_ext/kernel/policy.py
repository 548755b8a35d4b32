"""What a session may run: the ``allow_argv`` policy.

Under ``kernelspecs-only`` a session runs exactly an installed kernelspec's argv: ``argv``
given with ``kernel_name`` must be that kernelspec's, ``argv`` alone must be some installed
kernelspec's, no startup environment (it would run a login shell and a command of the
client's choosing first), and no env action on a variable that changes which program,
library or startup code the launched process loads (the dynamic loader, PATH lookup,
interpreter and shell startup). Variables that only affect code inside the kernel are
allowed: a client that may start a kernel may run code in it anyway.

It is checked on every path that launches a process: creating a session, start (also of a
session restored from the store) and restart (whose body may bring new env actions).
"""

from __future__ import annotations

from typing import Any

from session_ext.core.errors import FORBIDDEN, SupervisorError

# Names are compared upper-cased (environments are case-insensitive on Windows).
FORBIDDEN_ENV_PREFIXES = (
    "LD_",  # the dynamic loader: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, ...
    "DYLD_",  # macOS's
    "PYTHON",  # PYTHONPATH, PYTHONHOME, PYTHONSTARTUP, PYTHONWARNINGS (imports), ...
    "BASH_FUNC_",  # exported shell functions
    "PERL",  # PERL5LIB, PERL5OPT
    "RUBY",  # RUBYOPT, RUBYLIB
    "NODE_",  # NODE_OPTIONS (--require), NODE_PATH
    "JAVA_",  # JAVA_TOOL_OPTIONS (-javaagent)
    "_JAVA_",
    "JDK_JAVA_",
    "JULIA_",  # JULIA_LOAD_PATH, JULIA_DEPOT_PATH (startup.jl)
    "R_",  # R_PROFILE, R_ENVIRON, R_LIBS, R_HOME
)
FORBIDDEN_ENV_NAMES = frozenset(
    {
        "PATH",  # which program a bare argv[0] (or a wrapper script's commands) resolves to
        "BASH_ENV",  # sourced by non-interactive bash
        "ENV",  # sourced by sh
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "IFS",
        "GCONV_PATH",  # glibc loads gconv modules from here
        "CLASSPATH",
    }
)


def forbidden_env_name(name: str) -> bool:
    upper = name.upper()
    return upper in FORBIDDEN_ENV_NAMES or upper.startswith(FORBIDDEN_ENV_PREFIXES)


class ArgvPolicy:
    def __init__(self, allow_argv: str, kernel_spec_manager: Any):
        self.kernelspecs_only = allow_argv == "kernelspecs-only"
        self.ksm = kernel_spec_manager

    def check(
        self,
        argv: list[str],
        kernel_name: str | None,
        startup_environment: str,
        env: list[dict[str, str]],
    ) -> None:
        """403 unless what would be launched is allowed (always allowed under ``any``)."""
        if not self.kernelspecs_only:
            return
        if startup_environment != "none":
            raise _refused(
                f"startup_environment {startup_environment!r} is not allowed: this server "
                "only runs installed kernelspecs (use 'none')"
            )
        refused = sorted({a["name"] for a in env if forbidden_env_name(a["name"])})
        if refused:
            raise _refused(
                f"Env variables that change what the kernel process loads are not allowed "
                f"on this server: {', '.join(refused)}"
            )
        if not argv:
            return  # nothing to launch (a session for adopting a kernel)
        if kernel_name is not None:
            if argv != self._argv_of(kernel_name):
                raise _refused(
                    f"'argv' must be the argv of kernelspec {kernel_name!r} on this server "
                    "(it only runs installed kernelspecs); leave 'argv' out"
                )
        elif not any(argv == self._argv_of(name) for name in self.ksm.find_kernel_specs()):
            raise _refused(
                "This server only runs installed kernelspecs: give 'kernel_name', or the argv "
                "of an installed kernelspec"
            )

    def _argv_of(self, kernel_name: str) -> list[str] | None:
        try:
            return list(self.ksm.get_kernel_spec(kernel_name).argv)
        except Exception:  # removed or unreadable: its argv is not an installed one
            return None


def _refused(message: str) -> SupervisorError:
    return SupervisorError(403, FORBIDDEN, message)
