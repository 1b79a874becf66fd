"""Build, version and assemble the published specification site.

The same commands run in the site workflow (.github/workflows/site.yml) and in the tests:

    python scripts/site.py build OUT                  strict build of this checkout into OUT
    python scripts/site.py deploy VERSION [--push]    build it as VERSION onto the gh-pages
                                                      branch of the repository in the
                                                      current directory, with mike
    python scripts/site.py assemble OUT               that branch as the files to serve,
                                                      schemas at their $id URLs
    python scripts/site.py version REF                the site version a git ref publishes

The pages always come from the checkout holding this script; the branch from the
repository in the current directory (``--repo``), which the tests point at a scratch one.

Every build first runs the conformance kit against the bundled reference server: its
report is the first row of the conformance matrix, never committed, so it cannot go stale.
The kit's exit status does not stop the build: a failing reference server is shown failing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "mkdocs.yml"
BRANCH = "gh-pages"
#: The development version: what main shows, with a banner saying it is not normative.
DEV = "dev"
DEV_TITLE = "dev (not normative)"
PROTOCOL_VERSION = re.compile(r"^[0-9]+\.[0-9]+$")
#: Read by docs/hooks/rep_hooks.py: the reference server's report.json for the matrix.
REFERENCE_REPORT_VAR = "REP_REFERENCE_REPORT"
#: Read by mkdocs.yml (site_dir): where a build writes, so none writes into the checkout.
SITE_DIR_VAR = "REP_SITE_DIR"
MKDOCS_BUILD = (sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet")


def _env(**extra: str) -> dict[str, str]:
    """This interpreter's scripts first on PATH: mike runs ``mkdocs`` by name."""
    bin_dir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    search = f"{bin_dir}{os.pathsep}{path}"
    return {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PATH": search, **extra}


def _run(command: Sequence[str], cwd: Path | None = None, **env: str) -> None:
    print("+", " ".join(command), file=sys.stderr, flush=True)
    subprocess.run(list(command), cwd=cwd, env=_env(**env), check=True, timeout=900)


def reference_report(directory: Path) -> Path:
    """The kit's report on the reference server (``rep-conformance run --reference``).

    A report made earlier for this checkout can be passed in REP_REFERENCE_REPORT instead.
    """
    given = os.environ.get(REFERENCE_REPORT_VAR)
    if given:
        return Path(given)
    command = [sys.executable, "-m", "conformance.cli", "run", "--reference"]
    command += ["--report-dir", str(directory)]
    print("+", " ".join(command), file=sys.stderr, flush=True)
    done = subprocess.run(
        command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900, check=False
    )
    report = directory / "report.json"
    if not report.is_file():
        raise SystemExit(
            f"the kit wrote no report (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    print(f"reference report: {report} (kit exit status {done.returncode})", file=sys.stderr)
    return report


def build(out: Path, report: Path | None = None) -> None:
    """``mkdocs build --strict`` of this checkout into ``out``, with the reference row."""
    with tempfile.TemporaryDirectory(prefix="rep-site-") as tmp:
        found = report or reference_report(Path(tmp) / "reference")
        # From an empty directory: every path the build reads resolves against mkdocs.yml.
        elsewhere = Path(tmp) / "elsewhere"
        elsewhere.mkdir()
        _run(
            [*MKDOCS_BUILD, "-f", str(CONFIG), "-d", str(out)],
            cwd=elsewhere,
            **{REFERENCE_REPORT_VAR: str(found)},
        )
        if any(elsewhere.iterdir()):
            raise SystemExit("the build wrote into its current directory")


def _mike(repo: Path, *args: str, **env: str) -> None:
    _run([str(Path(sys.executable).parent / "mike"), *args, "-F", str(CONFIG)], cwd=repo, **env)


def _versions(repo: Path, branch: str) -> list[dict[str, object]]:
    done = subprocess.run(
        ["git", "show", f"{branch}:versions.json"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    loaded: list[dict[str, object]] = json.loads(done.stdout) if done.returncode == 0 else []
    return loaded


def default_version(names: Sequence[str]) -> str:
    """The newest protocol version deployed; the development version while none is."""
    released = sorted(
        (n for n in names if PROTOCOL_VERSION.match(n)), key=lambda n: tuple(map(int, n.split(".")))
    )
    return released[-1] if released else DEV


def deploy(version: str, repo: Path, branch: str, push: bool, report: Path | None) -> None:
    """Build the checkout as ``version`` onto ``branch`` of ``repo``, then set the default.

    ``repo`` is the git repository holding the branch (the checkout itself in CI, a
    scratch repository in the tests); mike commits there and pushes only with ``push``.
    """
    if version != DEV and not PROTOCOL_VERSION.match(version):
        raise SystemExit(f"a site version is a protocol version (1.0) or {DEV}, not {version!r}")
    title = DEV_TITLE if version == DEV else version
    if version != DEV and not _released(version):
        print(
            f"::warning::the normative changelog does not date REP {version}: set its"
            " 'released' in schemas/requirements-changelog.yaml when releasing it",
            file=sys.stderr,
        )
    pushing = ["--push"] if push else []
    with tempfile.TemporaryDirectory(prefix="rep-site-") as tmp:
        found = report or reference_report(Path(tmp) / "reference")
        _mike(
            repo,
            "deploy",
            "--branch",
            branch,
            "--title",
            title,
            *pushing,
            version,
            **{REFERENCE_REPORT_VAR: str(found), SITE_DIR_VAR: str(Path(tmp) / "site")},
        )
    names = [str(entry["version"]) for entry in _versions(repo, branch)]
    _mike(repo, "set-default", "--branch", branch, *pushing, default_version(names))


def _released(version: str) -> bool:
    """Whether the normative changelog gives ``version`` a release date."""
    sys.path.insert(0, str(ROOT))
    from rep_spec import changelog

    return any(v.version == version and v.released for v in changelog.load())


def assemble(out: Path, repo: Path, branch: str) -> None:
    """The branch's files in ``out``, plus each protocol version's schemas at the root.

    Schema ``$id``s are ``https://rep-protocol.dev/schemas/<version>/…``: the files of a
    released version come from its own build, a version not released yet from the
    development build (which publishes the schemas it is drafting), and the kit's own
    schemas (``schemas/conformance/``) from the default version.
    """
    out.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", branch], cwd=repo, capture_output=True, check=True
    )
    with tempfile.TemporaryFile() as tar_file:
        tar_file.write(archive.stdout)
        tar_file.seek(0)
        with tarfile.open(fileobj=tar_file) as tar:
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
                tar.extractall(out, filter="data")
            else:  # pragma: no cover - the archive is git's own output
                tar.extractall(out)
    names = [str(entry["version"]) for entry in _versions(repo, branch)]
    sources = [n for n in names if n == DEV] + sorted(
        (n for n in names if PROTOCOL_VERSION.match(n)), key=lambda n: tuple(map(int, n.split(".")))
    )
    for name in sources:  # released versions last: they win over the development build
        for published in sorted((out / name / "schemas").glob("*")):
            if PROTOCOL_VERSION.match(published.name) and (name == DEV or published.name == name):
                _replace_tree(published, out / "schemas" / published.name)
    kit_schemas = out / default_version(names) / "schemas" / "conformance"
    if kit_schemas.is_dir():
        _replace_tree(kit_schemas, out / "schemas" / "conformance")


def _replace_tree(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)


def version_of(ref: str) -> str:
    """What a git ref publishes: a release tag its protocol version, anything else dev."""
    if ref.startswith("refs/tags/v"):
        sys.path.insert(0, str(ROOT))
        from rep_spec import catalog

        return catalog().protocol_version
    return DEV


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/site.py", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build_p = commands.add_parser("build", help="strict build of this checkout")
    build_p.add_argument("out", type=Path)
    deploy_p = commands.add_parser("deploy", help="build as a version onto the gh-pages branch")
    deploy_p.add_argument("version")
    deploy_p.add_argument("--push", action="store_true", help="push the branch to origin")
    assemble_p = commands.add_parser("assemble", help="the branch as the files to serve")
    assemble_p.add_argument("out", type=Path)
    version_p = commands.add_parser("version", help="the site version a git ref publishes")
    version_p.add_argument("ref")
    for sub in (build_p, deploy_p):
        sub.add_argument(
            "--reference-report",
            type=Path,
            help="use this report.json of the reference server instead of running the kit",
        )
    for sub in (deploy_p, assemble_p):
        sub.add_argument(
            "--repo",
            type=Path,
            default=Path.cwd(),
            help="the git repository holding the branch (default: the current directory)",
        )
        sub.add_argument("--branch", default=BRANCH)
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.out.resolve(), args.reference_report)
    elif args.command == "deploy":
        deploy(args.version, args.repo.resolve(), args.branch, args.push, args.reference_report)
    elif args.command == "assemble":
        assemble(args.out.resolve(), args.repo.resolve(), args.branch)
    else:
        print(version_of(args.ref))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
