"""pyproject.toml's metadata: one version, one license statement, honest URLs and installs.

The built archives themselves are checked in test_wheel_install.py.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

import conformance

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT: dict[str, Any] = PYPROJECT["project"]

#: sha256 of the Apache License 2.0 exactly as apache.org publishes it (LICENSE-2.0.txt).
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def test_the_version_is_written_once() -> None:
    assert "version" not in PROJECT
    assert PROJECT["dynamic"] == ["version"]
    source = ROOT / PYPROJECT["tool"]["hatch"]["version"]["path"]
    assert source == ROOT / "conformance" / "__init__.py"
    assert re.findall(r'^__version__ = "([^"]+)"$', source.read_text(), re.M) == [
        conformance.__version__
    ]
    # No other file of the packages spells a version of its own.
    for package in ("rep_spec", "reference_server", "conformance"):
        for path in (ROOT / package).rglob("*.py"):
            if path != source:
                assert not re.search(r"^__version__\s*=", path.read_text(), re.M), path


def test_the_license_is_the_standard_apache_2_text() -> None:
    assert hashlib.sha256((ROOT / "LICENSE").read_bytes()).hexdigest() == APACHE_2_SHA256
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    assert "LICENSE" in PYPROJECT["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]


def test_the_classifiers_agree_with_the_other_fields() -> None:
    classifiers: list[str] = PROJECT["classifiers"]
    # PEP 639: the SPDX expression replaces License classifiers; PyPI refuses both at once.
    assert not [c for c in classifiers if c.startswith("License ::")]
    assert len([c for c in classifiers if c.startswith("Development Status ::")]) == 1
    versions = [c.rsplit(" ", 1)[1] for c in classifiers if re.fullmatch(r".*:: 3\.\d+", c)]
    assert versions == ["3.11", "3.12", "3.13"]
    assert PROJECT["requires-python"] == f">={versions[0]}"
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py311"
    assert PYPROJECT["tool"]["mypy"]["python_version"] == versions[0]


class MkDocsLoader(yaml.SafeLoader):
    """mkdocs.yml may use MkDocs' own tags (!relative, !ENV): read them as plain values."""


MkDocsLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def test_the_urls_are_real_addresses() -> None:
    urls: dict[str, str] = PROJECT["urls"]
    site = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=MkDocsLoader)
    assert urls["Homepage"] == urls["Documentation"] == site["site_url"]
    for url in urls.values():
        assert url.startswith("https://"), url
        assert not re.search(r"[<>{}]|OWNER|example\.", url, re.I), url
    repo_url = site.get("repo_url")
    if repo_url:  # once the repository's address is known, it is the package's Source
        assert urls.get("Source") == repo_url
    else:  # and until then, no guessed repository host
        assert not [u for u in urls.values() if "github.com" in u]


def test_the_dev_extra_has_what_the_release_workflow_runs() -> None:
    names = {
        re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0] for r in PROJECT["optional-dependencies"]["dev"]
    }
    assert {"build", "twine", "hatchling"} <= names
    backend = PYPROJECT["build-system"]["requires"]
    assert [r for r in backend if r.startswith("hatchling")] == ["hatchling>=1.27"]


def test_the_entry_points_name_existing_modules() -> None:
    for script, target in PROJECT["scripts"].items():
        module, function = target.split(":")
        path = ROOT / Path(*module.split("."))
        assert path.with_suffix(".py").is_file(), script
        assert f"def {function}(" in path.with_suffix(".py").read_text(), script
    plugin = PROJECT["entry-points"]["pytest11"]["rep_conformance"]
    assert (ROOT / Path(*plugin.split("."))).with_suffix(".py").is_file()
