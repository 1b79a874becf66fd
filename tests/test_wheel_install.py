"""The schemas must ship inside the wheel: installed code cannot reach a checkout's schemas/."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import rep_spec, sys
from rep_spec import MessageValidator, catalog, requirements, schema_dir, schema_registry
assert str(schema_dir()).startswith(sys.prefix), schema_dir()
assert "rep_spec" in str(schema_dir()), schema_dir()
schema_registry()
assert len(catalog().types) >= 25
assert "ENV-001" in requirements()
assert MessageValidator().check_client_message({"id": "1", "type": "ping",
    "timestamp": "2026-01-01T00:00:00Z", "payload": {}}) is None
print(schema_dir())
"""


@pytest.mark.timeout(300)
def test_wheel_installs_and_loads_schemas(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheel_dir),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = wheel_dir.glob("rep_kit-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], check=True
    )
    # Dependencies come from this environment's site-packages via PYTHONPATH, which (unlike a
    # site directory) does not run .pth files, so the editable checkout stays invisible.
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    result = subprocess.run(
        [str(python), "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert str(env_dir) in result.stdout
