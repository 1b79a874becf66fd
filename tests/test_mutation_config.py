"""The mutation-testing command is wired: config, scripts and extra agree (it is not run)."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "scripts" / "mutation.toml"


def test_the_config_mutates_the_core_and_tests_with_the_kit() -> None:
    config = tomllib.loads(CONFIG.read_text(encoding="utf-8"))["cosmic-ray"]
    assert (ROOT / config["module-path"]).is_dir()
    assert config["module-path"] == "reference_server/core"
    assert config["distributor"]["name"] == "local"
    command = config["test-command"].split()
    script = ROOT / command[-1]
    assert command[0] == "bash" and script.is_file()
    assert "conformance.cli run --reference" in script.read_text(encoding="utf-8")
    assert float(config["timeout"]) > 30


def test_the_scripts_parse_and_are_executable() -> None:
    for name in ("mutation.sh", "mutation-test.sh"):
        script = ROOT / "scripts" / name
        assert os.access(script, os.X_OK), name
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_cosmic_ray_is_the_mutation_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    assert any(spec.startswith("cosmic-ray") for spec in extras["mutation"])
    assert "tools/mutation.py" in (ROOT / "scripts" / "mutation.sh").read_text(encoding="utf-8")
