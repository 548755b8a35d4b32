"""Where ActiveSessions come from: a NewSession body (kernelspec defaults, the ``allow_argv``
policy, the program check) or a jupyter_server session's kernel; and the policy check
before anything launches a process (start, restart: also of a session restored from the
store). Stored sessions are made again by ``records.restored_session``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from session_ext.core.errors import SESSION_EXISTS, TOO_MANY_SESSIONS, SupervisorError, bad_request
from session_ext.core.requests import parse_new_session
from session_ext.core.spec import SessionSpec
from session_ext.kernel.launch import check_program, kernel_env, load_kernelspec
from session_ext.kernel.policy import ArgvPolicy
from session_ext.kernel.provisioning import launches_locally
from session_ext.session.session import ActiveSession, SessionListener

if TYPE_CHECKING:
    from collections.abc import Container

    from jupyter_client.kernelspec import KernelSpec
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager

    from session_ext.core.config import SupervisorConfig


class SessionFactory:
    def __init__(
        self,
        config: SupervisorConfig,
        kernel_manager: MappingKernelManager,
        listener: SessionListener,
    ):
        self.config = config
        self.kernel_manager = kernel_manager
        self.listener = listener
        self.policy = ArgvPolicy(config.allow_argv, kernel_manager.kernel_spec_manager)

    def new_session(self, body: Any, taken: Container[str], count: int) -> ActiveSession:
        """A session from a NewSession body; 400 if its id is ``taken``, 409 past
        ``max_sessions`` (``count`` sessions exist), 403 if the policy refuses it, 400 if
        its program cannot run."""
        fields, kernel_name = parse_new_session(
            body,
            {"username": self.config.username, "working_directory": self.config.server_root},
        )
        if fields["session_id"] in taken:
            raise SupervisorError(
                400, SESSION_EXISTS, f"Session {fields['session_id']!r} already exists"
            )
        if self.config.max_sessions and count >= self.config.max_sessions:
            raise SupervisorError(
                409,
                TOO_MANY_SESSIONS,
                f"The server allows at most {self.config.max_sessions} sessions; delete one first",
            )
        kernelspec = self._apply_kernelspec_defaults(fields, kernel_name)
        for name in ("display_name", "language"):
            if fields[name] is None:
                raise bad_request(f"Field '{name}' is required when 'argv' is given")
        self.policy.check(
            fields["argv"], fields["kernel_name"], fields["startup_environment"], fields["env"]
        )
        if fields["argv"]:  # empty: a session for adopting a kernel started elsewhere
            env = kernel_env(fields["env"], self.config.secrets)  # as at launch
            local = kernelspec is None or launches_locally(kernelspec, self.kernel_manager)
            check_program(fields["argv"], env, fields["working_directory"], local)
        return ActiveSession(SessionSpec(**fields), self.config, self.kernel_manager, self.listener)

    def _apply_kernelspec_defaults(
        self, fields: dict[str, Any], kernel_name: str | None
    ) -> KernelSpec | None:
        """Fill in what the kernelspec gives; the kernelspec, if any."""
        spec = None
        if kernel_name is None and fields["argv"] is None:
            kernel_name = fields["kernel_name"] = self.kernel_manager.default_kernel_name
        if kernel_name is not None:
            spec = load_kernelspec(self.kernel_manager.kernel_spec_manager, kernel_name)
            fields["argv"] = fields["argv"] or list(spec.argv)
            fields["language"] = fields["language"] or spec.language
            fields["display_name"] = fields["display_name"] or spec.display_name
            fields["interrupt_mode"] = fields["interrupt_mode"] or spec.interrupt_mode
        fields["interrupt_mode"] = fields["interrupt_mode"] or "signal"
        return spec

    def server_session(self, spec: SessionSpec, kernel_id: str) -> ActiveSession:
        """A session on a kernel jupyter_server started (and starts, restarts, shuts down)."""
        return ActiveSession(
            spec,
            self.config,
            self.kernel_manager,
            self.listener,
            kernel_id=kernel_id,
            owned_by_server=True,
        )

    def check_launch(self, session: ActiveSession, env: list[dict[str, str]] | None = None) -> None:
        """403 unless the policy allows what starting (or restarting, with ``env`` if given)
        the session would launch."""
        spec = session.spec
        self.policy.check(
            spec.argv, spec.kernel_name, spec.startup_environment, spec.env if env is None else env
        )
