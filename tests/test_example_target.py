"""``conformance/target.example.yaml`` describes the README's own server, and it passes.

The root README starts ``rep-server serve --port 8765 --config examples/rooms.yaml`` with
``REP_JWT_SECRET`` set. This test does exactly that (on a free port), changes only the
example's URLs to that port, and runs the whole kit on it as a user would. A fixture the
example names that examples/rooms.yaml lacks stops the run at the preflight (exit 4); a
baseline entry that no longer fails is stale (exit 1). examples/rooms.yaml has a 30 s
heartbeat and a 60 s rate-limit window, so the checks that would wait through them are
skipped over budget; that is expected and not a failure. The full run takes about 15 s,
so no subset is selected.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conformance.reference import free_port, healthy

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "conformance" / "target.example.yaml"
CONFIG = ROOT / "examples" / "rooms.yaml"
EXAMPLE_PORT = 8765
STARTUP = 20.0
RUN_TIMEOUT = 240

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """``rep-server serve --port PORT --config examples/rooms.yaml``, as the README runs it."""
    port = free_port()
    secret = secrets.token_urlsafe(32)
    log_path = tmp_path_factory.mktemp("readme-server") / "server.log"
    env = {**os.environ, "REP_JWT_SECRET": secret}
    command = [sys.executable, "-m", "reference_server", "serve", "--port", str(port)]
    command += ["--config", str(CONFIG)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + STARTUP
            while not healthy(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"rep-server did not start:\n{log_path.read_text()}")
                time.sleep(0.1)
            yield port, secret
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def example_for(port: int) -> dict[str, object]:
    """The example with only its URLs moved to ``port``."""
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for key in ("ws_url", "http_url", "sse_url"):
        url = example[key]
        assert f":{EXAMPLE_PORT}" in url, (key, url)
        example[key] = url.replace(f":{EXAMPLE_PORT}", f":{port}", 1)
    return example


def test_the_example_names_what_the_readme_server_has() -> None:
    """Cheap and offline: the fixtures agree with examples/rooms.yaml."""
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    fixtures = example["fixtures"]
    rooms = {room["id"]: room for room in config["rooms"]}
    assert rooms[fixtures["private_room"]].get("private")
    assert (
        rooms[fixtures["password_room"]["id"]]["password"] == fixtures["password_room"]["password"]
    )
    assert rooms[fixtures["moderated_room"]].get("moderated")
    invite = rooms[fixtures["invite_only_room"]["id"]]
    assert invite.get("invite_only")
    assert fixtures["invite_only_room"]["invited_user"] in invite["invited"]
    assert fixtures["stream"] in {stream["id"] for stream in config["streams"]}
    assert fixtures["allowed_origin"] in config["allowed_origins"]
    assert example["tokens"]["jwt"]["accepted_algorithms"] == config["jwt_algorithms"]


@pytest.mark.timeout(RUN_TIMEOUT + STARTUP + 30)
def test_the_example_target_passes_against_the_readme_server(
    readme_server: tuple[int, str], tmp_path: Path
) -> None:
    port, secret = readme_server
    copy = tmp_path / "copy.yaml"
    copy.write_text(yaml.safe_dump(example_for(port), sort_keys=False), encoding="utf-8")
    reports = tmp_path / "reports"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "conformance.cli", "run"),
            *("--target", str(copy), "--report-dir", str(reports)),
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env={**os.environ, "REP_JWT_SECRET": secret},
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr
    report = json.loads((reports / "report.json").read_text(encoding="utf-8"))
    assert report["stale_baseline"] == []
    assert not [t["id"] for t in report["tests"] if t["verdict"] in ("fail", "stale")]
