"""What the action installs, and the key of its pip cache.

    python resolve_kit.py --action-path PATH [--kit REQUIREMENT]

Prints ``requirement=...``, ``cache-key=...`` and ``cache-prefix=...`` lines and appends
them to the file ``$GITHUB_OUTPUT`` names (the step's outputs). Without ``--kit`` (the
action's default) the requirement is the repository the action was checked out from: the
nearest directory above PATH whose pyproject.toml declares the project ``rep-kit``.
Nothing is ever installed by the bare name ``rep-kit``: this project publishes no package
on an index, so that name would install whatever someone else registered. On a problem,
prints an ``::error`` and exits 4 (the kit's usage-error status).

Standard library only; runs with the Python the action set up, before the kit exists.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from pathlib import Path

PROJECT = "rep-kit"
USAGE_ERROR = 4

#: A requirement that names the project without a direct reference (``name @ url``):
#: pip would look it up on the package index.
INDEX_NAME = re.compile(r"^\s*rep[-_.]+kit\s*(\[[^\]]*\])?\s*([<>=!~;].*)?$", re.IGNORECASE)


class KitError(Exception):
    pass


def project_name(pyproject: Path) -> str | None:
    import tomllib

    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = data.get("project", {}).get("name")
    return name if isinstance(name, str) else None


def kit_root(action_path: Path) -> Path:
    """The checkout that contains the action: the nearest pyproject.toml of rep-kit."""
    start = action_path.resolve()
    for directory in (start, *start.parents):
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            name = project_name(pyproject)
            if name is not None and re.sub(r"[-_.]+", "-", name).lower() == PROJECT:
                return directory
    raise KitError(
        f"no pyproject.toml of {PROJECT} above {action_path}; set the kit input to a "
        "checkout, a wheel or a VCS URL of the kit"
    )


def requirement(kit: str, action_path: Path) -> str:
    if not kit.strip():
        return str(kit_root(action_path))
    if INDEX_NAME.match(kit) and "@" not in kit:
        raise KitError(
            f"kit: {kit!r} would install {PROJECT} from the package index, where this "
            "project publishes nothing (anyone may have registered the name). Leave kit "
            "empty to install the kit from the action's own checkout, or give a path, a "
            f'wheel or "{PROJECT} @ git+https://github.com/<owner>/<repo>@<tag>"'
        )
    return kit


def cache_key(req: str, action_path: Path, kit: str) -> tuple[str, str]:
    """(key, restore prefix): per runner OS and Python, then what is being installed."""
    digest = hashlib.sha256(req.encode())
    if not kit.strip():
        digest.update((Path(req) / "pyproject.toml").read_bytes())
    runner_os = os.environ.get("RUNNER_OS", sys.platform)
    prefix = f"rep-conformance-pip-{runner_os}-py{sys.version_info[0]}.{sys.version_info[1]}-"
    return prefix + digest.hexdigest()[:16], prefix


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--action-path", type=Path, required=True)
    parser.add_argument("--kit", default="")
    args = parser.parse_args(argv)
    # The python-version input may name an older Python: say so instead of a traceback.
    if sys.version_info < (3, 11):  # noqa: UP036
        print(
            f"::error title=rep-conformance::Python {sys.version.split()[0]} is too old: "
            "the kit needs 3.11 or newer (set the python-version input)"
        )
        return USAGE_ERROR
    try:
        req = requirement(args.kit, args.action_path)
    except KitError as error:
        print(f"::error title=rep-conformance::{error}")
        return USAGE_ERROR
    key, prefix = cache_key(req, args.action_path, args.kit)
    lines = f"requirement={req}\ncache-key={key}\ncache-prefix={prefix}\n"
    print(lines, end="")
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as stream:
            stream.write(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
