"""The guides' commands and files work when copied: options exist, examples load.

The guides describe two command-line tools and two file formats that change as the
project grows; these checks fail when a guide names an option the tool no longer has, or
shows a configuration or target file the tool would refuse.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from reference_server.config import parse_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GUIDES = ("implementers-guide.md", "conformance-guide.md")
BLOCK = re.compile(r"^```(?P<lang>\w+)(?P<info>[^\n]*)\n(?P<body>.*?)^```\s*$", re.M | re.S)
TOOLS = {"rep-server": "reference_server", "rep-conformance": "conformance.cli"}


def blocks(guide: str, lang: str) -> list[tuple[str, str]]:
    text = (DOCS / guide).read_text(encoding="utf-8")
    return [
        (m.group("info"), m.group("body")) for m in BLOCK.finditer(text) if m.group("lang") == lang
    ]


def command_lines() -> list[tuple[str, list[str]]]:
    """Every rep-server / rep-conformance invocation in the guides' shell blocks."""
    found = []
    for guide in GUIDES:
        for _, body in blocks(guide, "sh"):
            for line in body.replace("\\\n", " ").splitlines():
                for match in re.finditer(r"(rep-server|rep-conformance)\b([^&|;)#`\"]*)", line):
                    words = shlex.split(match.group(2).replace("<", "").replace(">", ""))
                    found.append((match.group(1), words))
    return found


@functools.cache
def help_text(tool: str, subcommand: str | None) -> str:
    module = TOOLS[tool]
    argv = [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())"]
    if module == "reference_server":
        argv = [sys.executable, "-m", "reference_server"]
    argv += [subcommand, "--help"] if subcommand else ["--help"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


COMMANDS = command_lines()


def test_the_guides_show_both_tools() -> None:
    assert {tool for tool, _ in COMMANDS} == set(TOOLS)
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize(
    ("tool", "words"), COMMANDS, ids=[" ".join([t, *w])[:60] for t, w in COMMANDS]
)
def test_every_option_in_the_guides_exists(tool: str, words: list[str]) -> None:
    subcommand = words[0] if words and not words[0].startswith("-") else None
    options = [w.split("=")[0] for w in words if w.startswith("--")]
    if options == ["--version"]:
        return
    text = help_text(tool, subcommand)
    for option in options:
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), (tool, option)


def test_the_configuration_in_the_implementers_guide_loads() -> None:
    configs = [
        body for info, body in blocks("implementers-guide.md", "yaml") if "rooms.yaml" in info
    ]
    assert configs, "the guide shows a rooms.yaml"
    config = parse_config(yaml.safe_load(configs[0]))
    assert config.rooms and config.streams


def test_the_target_files_in_the_conformance_guide_are_valid() -> None:
    schema = json.loads((ROOT / "conformance" / "target.schema.json").read_text("utf-8"))
    validator = Draft202012Validator(schema)
    targets = {
        info.split('"')[1]: yaml.safe_load(body)
        for info, body in blocks("conformance-guide.md", "yaml")
        if "title=" in info and ".yaml" in info and "workflows" not in info
    }
    server = {**targets.pop("server.yaml"), **targets.pop("server.yaml (continued)")}
    documents = [server, *targets.values()]
    assert len(documents) >= 2
    for document in documents:
        problems = [e.message for e in validator.iter_errors(document)]
        assert problems == [], (document.get("name"), problems)
