"""What .github/workflows/release.yml does, done locally on the built distributions.

The sdist and the wheel are built once (``python -m build``: the wheel from the sdist, as
in the release workflow), checked with ``twine check --strict``, inspected for the
license and the single-sourced version, and the wheel is installed into a clean virtual
environment where installed code, not the checkout, loads the schemas and checks the
bundled reference server.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import conformance

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import rep_spec, sys, conformance, reference_server
from rep_spec import MessageValidator, catalog, requirements, schema_dir, schema_registry
for module in (rep_spec, conformance, reference_server):
    assert module.__file__.startswith(sys.prefix), module.__file__
assert str(schema_dir()).startswith(sys.prefix), schema_dir()
assert "rep_spec" in str(schema_dir()), schema_dir()
schema_registry()
assert len(catalog().types) >= 25
assert "ENV-001" in requirements()
assert MessageValidator().check_client_message({"id": "1", "type": "ping",
    "timestamp": "2026-01-01T00:00:00Z", "payload": {}}) is None
print(schema_dir())
"""


def need(module: str) -> None:
    """Skip without a dev tool; under REP_REQUIRE_ALL=1 (CI) fail instead."""
    if importlib.util.find_spec(module) is None:
        reason = f"{module} is not installed (pip install -e '.[dev]')"
        if os.environ.get("REP_REQUIRE_ALL") == "1":
            pytest.fail(f"{reason}; REP_REQUIRE_ALL=1 requires it")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build`` into a fresh directory: one sdist and one wheel."""
    need("build")
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: the build backend of this environment (hatchling, a dev extra),
    # so the test needs no network; the release workflow builds isolated.
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def only(directory: Path, pattern: str) -> Path:
    (found,) = directory.glob(pattern)
    return found


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean virtual environment with the built wheel (not the checkout) installed."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(only(dist, "*.whl"))],
        check=True,
        timeout=240,
    )
    return env_dir


def clean_env() -> dict[str, str]:
    # Dependencies come from this environment's site-packages via PYTHONPATH, which (unlike
    # a site directory) does not run .pth files, so the editable checkout stays invisible.
    return {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}


def test_the_distributions_are_named_after_the_one_version(dist: Path) -> None:
    version = conformance.__version__
    assert sorted(p.name for p in dist.iterdir()) == [
        f"rep_kit-{version}-py3-none-any.whl",
        f"rep_kit-{version}.tar.gz",
    ]


def test_twine_check_strict_passes(dist: Path) -> None:
    need("twine")
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted(dist.iterdir()))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_both_archives_carry_the_license(dist: Path) -> None:
    license_text = (ROOT / "LICENSE").read_bytes()
    with tarfile.open(only(dist, "*.tar.gz")) as sdist:
        root = sdist.getnames()[0].split("/")[0]
        member = sdist.extractfile(f"{root}/LICENSE")
        assert member is not None
        assert member.read() == license_text
        pkg_info = sdist.extractfile(f"{root}/PKG-INFO")
        assert pkg_info is not None
        sdist_metadata = Parser().parsestr(pkg_info.read().decode())
    with zipfile.ZipFile(only(dist, "*.whl")) as wheel:
        info = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        dist_info = info.rsplit("/", 1)[0]
        assert wheel.read(f"{dist_info}/licenses/LICENSE") == license_text
        wheel_metadata = Parser().parsestr(wheel.read(info).decode())
        names = wheel.namelist()
    for metadata in (sdist_metadata, wheel_metadata):
        assert metadata["Version"] == conformance.__version__
        assert metadata["License-Expression"] == "Apache-2.0"
        assert metadata.get_all("License-File") == ["LICENSE"]
        assert not [c for c in metadata.get_all("Classifier") or [] if c.startswith("License ::")]
    assert "rep_spec/schemas/envelope.schema.json" in names
    assert "conformance/run.ini" in names


def test_wheel_installs_and_loads_schemas(installed: Path) -> None:
    result = subprocess.run(
        [str(installed / "bin" / "python"), "-c", PROBE],
        cwd=installed,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert str(installed) in result.stdout


@pytest.mark.network
@pytest.mark.timeout(300)
def test_the_installed_wheel_checks_the_reference_server(installed: Path) -> None:
    """The release workflow's gate: ``rep-conformance run --reference`` exits 0."""
    kit = installed / "bin" / "rep-conformance"
    version = subprocess.run(
        [str(kit), "--version"], env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert version.stdout.strip() == f"rep-conformance {conformance.__version__}"
    reports = installed / "report"
    done = subprocess.run(
        [str(kit), "run", "--reference", "--report-dir", str(reports)],
        cwd=installed,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((reports / "report.json").read_text(encoding="utf-8"))
    assert report["outcome"] == "pass"
    assert report["kit"]["version"] == conformance.__version__
    assert re.search(r"\d+ passed", done.stdout), done.stdout[-2000:]
