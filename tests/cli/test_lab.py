"""`session-ext` finds the running JupyterLab by itself: `ls` shows the lab's notebooks."""

from __future__ import annotations

import os
import subprocess

from ..support.helpers import WAIT
from ..support.lab import LabServer
from ..support.notebooks import make_notebook, open_in_lab
from ..support.terminal import cli_command


def test_ls_shows_the_labs_notebooks(tmp_path):
    lab = LabServer(tmp_path)
    try:
        lab.start()
        make_notebook(lab.root_dir / "sales.ipynb", "pass")
        model = open_in_lab(lab, "sales.ipynb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_EXT_")}
        result = subprocess.run(
            [*cli_command(), "ls"],
            capture_output=True,
            text=True,
            cwd=lab.root_dir,
            env={**env, "JUPYTER_RUNTIME_DIR": str(lab.runtime_dir)},
            timeout=WAIT,
        )
        assert result.returncode == 0, result.stderr
        assert f"{lab.base_url}/supervisor" in result.stderr
        [row] = [x for x in result.stdout.splitlines() if model["id"] in x]
        assert "sales.ipynb" in row and "notebook" in row
        assert str(lab.root_dir / "sales.ipynb") in row
    finally:
        lab.stop()
