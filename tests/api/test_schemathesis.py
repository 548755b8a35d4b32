"""schemathesis against a real `jupyter session-ext`: every operation of openapi.yaml (as the
server serves it) with generated valid and invalid requests, and every check schemathesis has
(`--checks all`: no 5xx, documented status codes, content types and headers, response bodies
that match their schemas, invalid data refused, valid data accepted, 405 with Allow for
undocumented methods, auth not ignored, ...). Settings (deterministic seed, examples per
operation, the few per-operation allowances, each with its reason) are in schemathesis.toml.

Left out: `POST /shutdown` (it stops the server under test; test_standalone covers it).
Kept, with few examples: start, restart, execute, interrupt, kill, adopt — the stateful
phase chains them on the sessions it creates, so real kernels start and stop; adopt always
targets one session made here with a 1 s connection_timeout (see schemathesis.toml).
At the end `POST /shutdown` stops every kernel the run started, then the server.
"""

import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = Path(__file__).with_name("schemathesis.toml")
SKIPPED = ["shutdownServer"]
RUN_TIMEOUT = 150  # seconds; the run takes about a minute on 2 busy cores


@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_openapi_contract_holds_under_schemathesis(server, tmp_path):
    server.start()
    server.ok(
        "PUT",
        "sessions",
        {"session_id": "st-adopt", "kernel_name": "python3", "connection_timeout": 1},
    )
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        server.url("openapi.yaml"),
        "--url",
        server.url("").rstrip("/"),
        "--header",
        f"Authorization: Bearer {server.info['bearer_token']}",
        "--checks",
        "all",
        "--output-truncate",
        "true",
        *(arg for op in SKIPPED for arg in ("--exclude-operation-id", op)),
    ]
    try:
        run = subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
    finally:
        server.call("POST", "shutdown", timeout=60)  # every kernel the run started
        server.proc.wait(30)
    print(run.stdout[-3000:])  # the summary (pytest -s shows it)
    assert run.returncode == 0, f"{run.stdout[-30000:]}\n{run.stderr[-3000:]}"
    assert "Operations:       28 selected / 29 total" in run.stdout, run.stdout[:2000]
