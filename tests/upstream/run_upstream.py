"""jupyter_server's own tests, without and with session_ext: enabling the extension must
change nothing that jupyter_server promises.

Downloads the sdist of the *installed* jupyter_server (it contains ``tests/``), runs its
``tests/services/{kernels,sessions,events}`` twice — as released, then with session_ext
enabled the way an install enables it (``session_ext_upstream.py``, a pytest plugin) plus a
probe proving the extension was active — and fails on any test that passes without the
extension and fails with it (twice: such a test is run once more, for the few upstream tests
that are flaky on a small machine). Usage: ``python tests/upstream/run_upstream.py [WORKDIR]``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITES = ["tests/services/kernels", "tests/services/sessions", "tests/services/events"]
PROBE = "tests/services/test_zz_session_ext_probe.py"
# Tests the environment (not the extension) makes fail in both runs, and why.
ENVIRONMENT_FAILURES = {
    "tests.services.kernels.test_connection::test_websocket_connection": (
        "its mock HTTPServerRequest passes method/uri/version, which this tornado deprecates; "
        "upstream turns warnings into errors"
    ),
    "tests.services.kernels.test_connection::test_nudge_cleanup_closes_transient_channels_when_iopub_closed": (
        "the same mock request as test_websocket_connection"
    ),
    "tests.services.kernels.test_connection::test_no_fd_leak_on_buffer_restore_with_port_change": (
        "the same mock request as test_websocket_connection"
    ),
    "tests.services.kernels.test_connection::test_no_fd_leak_on_disconnect_with_orphaned_kernel_info_channel": (
        "the same mock request as test_websocket_connection"
    ),
    "tests.services.kernels.test_connection::test_disconnect_resolves_orphaned_kernel_info_future": (
        "the same mock request as test_websocket_connection"
    ),
}


def sdist(workdir: Path) -> Path:
    """The installed jupyter_server's source distribution, unpacked (downloaded once)."""
    release = version("jupyter_server")
    root = workdir / f"jupyter_server-{release}"
    if (root / "tests" / "services").is_dir():
        return root
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            f"jupyter_server=={release}",
            "-d",
            str(workdir),
        ],
        check=True,
    )
    with tarfile.open(workdir / f"jupyter_server-{release}.tar.gz") as archive:
        archive.extractall(workdir, filter="data")
    return root


def node_id(test_id: str) -> str:
    """``tests.services.x.test_api::test_y[p]`` as pytest's node id."""
    module, name = test_id.split("::", 1)
    return module.replace(".", "/") + ".py::" + name


def run(root: Path, name: str, extension: bool, tests: list[str] = SUITES) -> dict[str, str]:
    """One run; test id -> passed | failed | skipped."""
    report = root / f"{name}.xml"
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "-o",
        "timeout_method=signal",
        "--timeout",
        "100",
        f"--junitxml={report}",
        *tests,
    ]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    probe = root / PROBE
    if extension:
        shutil.copy(HERE / "probe_session_ext.py", probe)
        args += ["-p", "session_ext_upstream", PROBE]
        env["PYTHONPATH"] = str(HERE)
    elif probe.exists():
        probe.unlink()
    print(f"--- jupyter_server's tests, {name}", flush=True)
    subprocess.run(args, cwd=root, env=env, check=False, timeout=1500)
    results = {}
    for case in ET.parse(report).iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            results[test_id] = "failed"
        elif case.find("skipped") is not None:
            results[test_id] = "skipped"
        else:
            results.setdefault(test_id, "passed")
    return results


def main() -> int:
    workdir = Path(sys.argv[1] if len(sys.argv) > 1 else HERE.parent.parent / ".upstream")
    root = sdist(workdir.resolve())
    without = run(root, "without-session-ext", extension=False)
    with_ext = run(root, "with-session-ext", extension=True)
    probe = [t for t in with_ext if "session_ext_probe" in t]
    regressions = sorted(
        t for t, outcome in without.items() if outcome == "passed" and with_ext.get(t) != "passed"
    )
    if regressions:  # a few upstream tests are flaky here: a regression must fail twice
        again = run(root, "with-session-ext-again", True, [node_id(t) for t in regressions])
        regressions = [t for t in regressions if again.get(t) != "passed"]
    both = sorted(t for t, o in without.items() if o == "failed" and with_ext.get(t) == "failed")
    count = {
        name: sum(o == "passed" for o in r.values())
        for name, r in (("without", without), ("with", with_ext))
    }
    print(
        f"jupyter_server {version('jupyter_server')}: {count['without']} passed without "
        f"session_ext, {count['with']} with it (of {len(without)}, probe included in 'with')"
    )
    for test in both:
        print(f"failing in both runs: {test} — {ENVIRONMENT_FAILURES.get(test, 'not explained')}")
    if not probe or any(with_ext[t] != "passed" for t in probe):
        print("FAILED: the probe did not see session_ext active in the 'with' run")
        return 1
    if regressions:
        print("FAILED: passing without session_ext, failing with it:")
        for test in regressions:
            print(f"  {test}")
        return 1
    print("upstream: no regression with session_ext enabled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
