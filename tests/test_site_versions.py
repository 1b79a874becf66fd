"""The published site, versioned: the site workflow's deploy steps against a scratch repository.

The deploy job's own steps (read from .github/workflows/site.yml) run in a scratch git
repository whose ``origin`` is a scratch bare repository: REP 1.0 as from a release tag,
then the development version as from main, each built with mike onto gh-pages and pushed,
then assembled into the files GitHub Pages would serve. Nothing touches this repository's
branches or the network: the assembled site is served on loopback and read by Chromium.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conformance.reports.model import REQUIREMENT_URL, SPEC_SITE
from rep_spec import catalog, requirements, schema_dir
from tests.site_workflow import run_step

ROOT = Path(__file__).resolve().parents[1]
BANNER = "Development version: not normative"
DEV_TITLE = "dev (not normative)"


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def own_branches() -> str:
    return git(ROOT, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads")


@dataclass(frozen=True)
class Published:
    pages: Path
    origin: Path
    scratch: Path
    runner_temp: Path
    report: Path
    #: What the deploy step of the protocol version printed on standard error.
    release_log: str


def deploy_step(name: str, scratch: Path, runner_temp: Path, **env: str) -> str:
    """Run the step; its standard error."""
    done = run_step("deploy", name, cwd=scratch, runner_temp=runner_temp, **env)
    assert done.returncode == 0, f"{name}:\n{done.stdout}\n{done.stderr[-4000:]}"
    return done.stderr


def choose_version(ref: str, scratch: Path, runner_temp: Path) -> str:
    output = runner_temp / "github-output"
    output.write_text("", encoding="utf-8")
    deploy_step("Choose the version", scratch, runner_temp, REF=ref, GITHUB_OUTPUT=str(output))
    found = re.fullmatch(r"version=(\S+)\n", output.read_text(encoding="utf-8"))
    assert found, output.read_text(encoding="utf-8")
    return found.group(1)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    before = own_branches()
    base = tmp_path_factory.mktemp("published")
    runner_temp = base / "runner"
    runner_temp.mkdir()
    # The matrix's reference row is not what this module checks (tests/test_docs_site.py
    # builds with a real kit run): a committed report stands in, which saves a kit run.
    report = next((ROOT / "implementations").glob("*/*.json"))
    origin = base / "origin.git"
    git(base, "init", "--quiet", "--bare", str(origin))
    scratch = base / "checkout"
    scratch.mkdir()
    git(scratch, "init", "--quiet", "-b", "main")
    git(scratch, "remote", "add", "origin", str(origin))
    git(
        scratch,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.invalid",
        "commit",
        "--quiet",
        "--allow-empty",
        "-m",
        "the checkout",
    )
    # The steps call scripts/site.py from the checkout; it reads the pages of this project.
    (scratch / "scripts").symlink_to(ROOT / "scripts", target_is_directory=True)
    deploy_step("Name the committer", scratch, runner_temp)
    logs = {}
    for ref in ("refs/tags/v0.1.0", "refs/heads/main"):
        version = choose_version(ref, scratch, runner_temp)
        logs[version] = deploy_step(
            "Build the version onto gh-pages",
            scratch,
            runner_temp,
            VERSION=version,
            REP_REFERENCE_REPORT=str(report),
        )
    deploy_step("Assemble the pages", scratch, runner_temp)
    assert own_branches() == before, "the deploy touched this repository's branches"
    release_log = logs[catalog().protocol_version]
    return Published(runner_temp / "pages", origin, scratch, runner_temp, report, release_log)


def test_release_tags_publish_the_protocol_version_and_main_the_dev_version(
    published: Published,
) -> None:
    assert choose_version("refs/tags/v9.9.9", published.scratch, published.runner_temp) == (
        catalog().protocol_version
    )
    assert choose_version("refs/heads/main", published.scratch, published.runner_temp) == "dev"


def test_a_protocol_version_the_changelog_does_not_date_is_published_with_a_warning(
    published: Published,
) -> None:
    from rep_spec import changelog

    version = catalog().protocol_version
    dated = any(v.version == version and v.released for v in changelog.load())
    warned = f"::warning::the normative changelog does not date REP {version}"
    assert (warned in published.release_log) is not dated, published.release_log[-2000:]


def test_versions_json_lists_both_and_the_root_opens_the_release(published: Published) -> None:
    version = catalog().protocol_version
    listed = json.loads((published.pages / "versions.json").read_text(encoding="utf-8"))
    assert {(v["version"], v["title"]) for v in listed} == {(version, version), ("dev", DEV_TITLE)}
    root = (published.pages / "index.html").read_text(encoding="utf-8")
    assert f'content="0; url={version}/"' in root or f'href="{version}/"' in root, root
    # The branch went to origin (the scratch one): the workflow's --push works.
    assert "versions.json" in git(published.origin, "ls-tree", "--name-only", "gh-pages")


def test_only_the_development_version_carries_the_banner(published: Published) -> None:
    version = catalog().protocol_version
    for page in (
        "index.html",
        "specification/envelope/index.html",
        "conformance-matrix/index.html",
    ):
        dev = (published.pages / "dev" / page).read_text(encoding="utf-8")
        assert BANNER in dev, page
        assert BANNER not in (published.pages / version / page).read_text(encoding="utf-8")
    envelope = (published.pages / "dev/specification/envelope/index.html").read_text("utf-8")
    assert 'href="../../../">the site\'s root</a>' in envelope


def test_each_version_is_canonical_under_its_own_path(published: Published) -> None:
    version = catalog().protocol_version
    for name in (version, "dev"):
        page = (published.pages / name / "specification/envelope/index.html").read_text("utf-8")
        assert f'rel="canonical" href="{SPEC_SITE}{name}/specification/envelope/"' in page


def served_pages(pages: Path) -> Iterator[str]:
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(pages))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def served(published: Published) -> Iterator[str]:
    yield from served_pages(published.pages)


def kit_schema_paths() -> list[Path]:
    return [
        ROOT / "conformance" / "target.schema.json",
        ROOT / "conformance" / "report.schema.json",
    ]


@pytest.mark.network
def test_schemas_are_served_as_json_at_their_ids(published: Published, served: str) -> None:
    sources = sorted(schema_dir().rglob("*.schema.json")) + kit_schema_paths()
    for source in sources:
        document = json.loads(source.read_text(encoding="utf-8"))
        schema_id = document["$id"]
        assert schema_id.startswith(SPEC_SITE), schema_id
        url = served + schema_id.removeprefix(SPEC_SITE)
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.headers.get_content_type() == "application/json", url
            assert json.loads(answer.read()) == document, schema_id
    assert len(sources) > 20


def test_every_requirement_id_resolves_to_its_anchor_in_each_version(published: Published) -> None:
    """The kit's links (REQUIREMENT_URL) land on the id's index entry, which links to the
    sentence in the section page; both anchors exist for every id the registry holds."""
    missing = []
    for name in (catalog().protocol_version, "dev"):
        prefix = SPEC_SITE + catalog().protocol_version + "/"
        for requirement in requirements():
            url = REQUIREMENT_URL.format(id=requirement.id)
            path, _, anchor = url.removeprefix(prefix).partition("#")
            index = (published.pages / name / path / "index.html").read_text(encoding="utf-8")
            entry = re.search(rf'<span id="{anchor}"></span><a href="([^"#]+)#{anchor}"', index)
            if entry is None:
                missing.append(f"{name}: {url}")
                continue
            section_page = published.pages / name / path / entry.group(1) / "index.html"
            if f'id="{anchor}"' not in section_page.resolve().read_text(encoding="utf-8"):
                missing.append(f"{name}: {entry.group(1)}#{anchor}")
    assert not missing, missing[:20]


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        reason = "chromium is not on PATH (Debian: apt-get install -y chromium)"
        if os.environ.get("REP_REQUIRE_ALL") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def rendered(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran (the selector fetches versions.json)."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        # Offline: every host name but the loopback server's fails to resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--virtual-time-budget=10000",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.network
def test_the_version_selector_lists_both_versions_offline(served: str, tmp_path: Path) -> None:
    version = catalog().protocol_version
    dom = rendered(served + f"{version}/specification/envelope/", tmp_path / "profile")
    selector = re.search(r'<div class="md-version">(.*?)</ul>', dom, re.S)
    assert selector is not None, "no version selector: versions.json was not read"
    links = dict(
        (text.strip(), href)
        for href, text in re.findall(
            r'<a href="([^"]+)" class="md-version__link"[^>]*>(.*?)</a>', selector.group(1), re.S
        )
    )
    assert set(links) == {version, DEV_TITLE}, links
    assert links[DEV_TITLE].startswith(served + "dev/"), links
    dev = rendered(served + "dev/", tmp_path / "profile")
    assert BANNER in dev and "md-version__current" in dev


def test_a_build_named_after_another_protocol_version_is_refused(published: Published) -> None:
    major, minor = catalog().protocol_version.split(".")
    wrong = f"{major}.{int(minor) + 1}"
    done = run_step(
        "deploy",
        "Build the version onto gh-pages",
        cwd=published.scratch,
        runner_temp=published.runner_temp,
        VERSION=wrong,
        REP_REFERENCE_REPORT=str(published.report),
    )
    assert done.returncode != 0
    assert f"build {wrong} from its release tag" in done.stderr, done.stderr[-3000:]
    assert wrong not in git(published.scratch, "show", "gh-pages:versions.json")


# --- the workflow itself ---------------------------------------------------------------------


def test_pull_requests_build_and_only_main_and_release_tags_deploy() -> None:
    from tests.site_workflow import BUILD_STEP, step, workflow

    document = workflow()
    triggers = document["on"]
    assert "pull_request" in triggers
    assert triggers["push"] == {"branches": ["main"], "tags": ["v*"]}
    build, deploy = document["jobs"]["build"], document["jobs"]["deploy"]
    assert "if" not in build, "every event builds"
    assert step(*BUILD_STEP)["run"] == 'python scripts/site.py build "$RUNNER_TEMP/site"'
    condition = " ".join(deploy["if"].split())
    assert "github.ref == 'refs/heads/main'" in condition
    assert "startsWith(github.ref, 'refs/tags/v')" in condition
    assert "pull_request" not in condition
    assert deploy["needs"] == "build", "nothing deploys that did not build strictly"


def test_the_deploy_uses_the_official_pages_actions_with_least_privilege() -> None:
    from tests.site_workflow import workflow

    deploy = workflow()["jobs"]["deploy"]
    uses = [s["uses"].split("@")[0] for s in deploy["steps"] if "uses" in s]
    assert uses[-3:] == [
        "actions/configure-pages",
        "actions/upload-pages-artifact",
        "actions/deploy-pages",
    ]
    assert deploy["permissions"] == {"contents": "write", "pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert deploy["concurrency"] == {"group": "site-deploy", "cancel-in-progress": False}
    checkout = next(s for s in deploy["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0, "mike extends the history of gh-pages"


# --- the banner and the version name, without a build ---------------------------------------


def hooks() -> None:
    if str(ROOT / "docs" / "hooks") not in sys.path:
        sys.path.insert(0, str(ROOT / "docs" / "hooks"))


def test_the_banner_links_to_the_site_root_from_any_depth() -> None:
    hooks()
    from rep_site.versions import banner

    assert 'href="../">' in banner("")
    assert 'href="../../../">' in banner("specification/envelope/")
    assert BANNER in banner("reference/")


def test_which_builds_are_development_builds() -> None:
    hooks()
    from rep_site.versions import check_version, is_development

    version = catalog().protocol_version
    assert is_development("dev", version) and not is_development(version, version)
    assert not is_development(None, version), "a plain build is not published"
    check_version("dev", version)
    check_version(None, version)
    with pytest.raises(ValueError, match="from its release tag"):
        check_version("9.9", version)
