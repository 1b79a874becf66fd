"""docs/deployment.md agrees with deploy/haproxy/haproxy.cfg and with the tools it runs.

The guide restates the configuration's variables, timeouts and health-check values in
tables, and shows commands and a target file to copy; these checks fail when either side
changes without the other.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

from reference_server.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
CONFIG = (ROOT / "deploy" / "haproxy" / "haproxy.cfg").read_text(encoding="utf-8")
BLOCK = re.compile(r"^```(?P<lang>\w+)(?P<info>[^\n]*)\n(?P<body>.*?)^```\s*$", re.M | re.S)
HELP = {
    "rep-server": [sys.executable, "-m", "reference_server"],
    "rep-conformance": [
        sys.executable,
        "-c",
        "import sys; from conformance.cli import main; sys.exit(main())",
    ],
}


def blocks(lang: str) -> list[tuple[str, str]]:
    return [(m["info"], m["body"]) for m in BLOCK.finditer(GUIDE) if m["lang"] == lang]


def table_rows(first_header: str) -> list[list[str]]:
    """The body rows of the guide's table whose first column is ``first_header``."""
    lines = GUIDE.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_variables_table_lists_exactly_what_the_configuration_reads() -> None:
    read = set(re.findall(r'"\$\{(REP_\w+)-', CONFIG)) | set(
        re.findall(r"defined\((REP_\w+)\)", CONFIG)
    )
    listed = {name for row in table_rows("variable") for name in re.findall(r"`(REP_\w+)`", row[0])}
    assert listed == read


def test_the_variables_defaults_are_the_configurations() -> None:
    defaults = dict(re.findall(r'"\$\{(REP_\w+)-([^}]*)\}"', CONFIG))
    for row in table_rows("variable"):
        names = re.findall(r"`(REP_\w+)`", row[0])
        shown = re.findall(r"`([^`]+)`", row[1])
        if row[1] == "unset":
            assert all(name not in defaults for name in names), row
            continue
        assert shown == [defaults[name] for name in names], row


def configured(keyword: str) -> str:
    """The value of a one-value setting line of the configuration, e.g. ``timeout tunnel``."""
    found = re.search(rf"^\s+{keyword} (\S+)$", CONFIG, re.M)
    assert found is not None, keyword
    return found[1]


def test_the_timeouts_table_gives_the_configurations_values() -> None:
    rows = table_rows("timeout")
    sse = re.search(r"set-timeout server (\S+) if \{ path /events \}", CONFIG)
    assert sse is not None
    checked = set()
    for row in rows:
        names = re.findall(r"`timeout ([\w-]+)`", row[0])
        value = sse[1] if "`/events`" in row[0] else configured(f"timeout {names[0]}")
        assert all(configured(f"timeout {n}") == value for n in names if "/events" not in row[0])
        assert row[1].startswith(f"`{value}`"), row
        checked.update(names)
    assert {"tunnel", "client", "server", "client-fin", "server-fin"} <= checked


def test_the_health_check_table_gives_the_configurations_values() -> None:
    server = re.search(r"^\s+default-server (.*)$", CONFIG, re.M)
    assert server is not None
    words = server[1].split()
    values = dict(itertools.pairwise(words))
    rows = table_rows("setting")
    for row in rows:
        keyword = re.findall(r"`([\w ]+)`", row[0])[0]
        value = configured(keyword) if keyword.startswith("timeout ") else values[keyword]
        assert row[1] == f"`{value}`", row
    assert len(rows) == 5
    assert "option httpchk GET /health" in CONFIG and "http-check expect status 200" in CONFIG


def test_every_option_the_guide_uses_exists() -> None:
    seen = 0
    for _, body in blocks("sh"):
        for line in body.replace("\\\n", " ").splitlines():
            for match in re.finditer(r"(rep-server|rep-conformance)\b([^&|;)#`\"]*)", line):
                words = shlex.split(match[2])
                command = [*HELP[match[1]], *words[:1], "--help"]
                done = subprocess.run(command, capture_output=True, text=True, timeout=60)
                assert done.returncode == 0, (command, done.stderr[-2000:])
                text = done.stdout
                for option in (w.split("=")[0] for w in words if w.startswith("--")):
                    assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), option
                seen += 1
    assert seen >= 3


def test_the_target_file_is_valid_and_matches_the_example_configuration() -> None:
    schema = json.loads((ROOT / "conformance" / "target.schema.json").read_text("utf-8"))
    [target] = [yaml.safe_load(body) for info, body in blocks("yaml") if "behind-haproxy" in info]
    Draft202012Validator(schema).validate(target)
    assert target["nodes"] == [{k: target[k] for k in ("ws_url", "http_url", "sse_url")}]
    config = parse_config(yaml.safe_load((ROOT / "examples" / "rooms.yaml").read_text("utf-8")))
    fixtures = target["fixtures"]
    rooms = {room.id: room for room in config.rooms}
    assert rooms[fixtures["private_room"]].private
    assert rooms[fixtures["password_room"]["id"]].password == fixtures["password_room"]["password"]
    assert rooms[fixtures["moderated_room"]].moderated
    invite_only = rooms[fixtures["invite_only_room"]["id"]]
    assert (
        invite_only.invite_only
        and fixtures["invite_only_room"]["invited_user"] in invite_only.invited
    )
    assert fixtures["stream"] in {stream.id for stream in config.streams}
    assert fixtures["allowed_origin"] in config.allowed_origins


def test_the_guide_shows_the_configuration_file_itself() -> None:
    assert '--8<-- "deploy/haproxy/haproxy.cfg"' in GUIDE
