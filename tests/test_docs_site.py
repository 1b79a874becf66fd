"""Build the spec site strictly and check it as a published site and as a reader sees it.

The build runs once per module (``mkdocs build --strict``, as CI does). The browser checks
load pages in headless Chromium when it is installed; with REP_REQUIRE_ALL=1 (CI) a
missing Chromium is a failure, elsewhere a skip.
"""

from __future__ import annotations

import functools
import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rep_spec import catalog, requirements, schema_dir
from tests.site_workflow import BUILD_STEP, run_step

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "reports" / "screenshots"


# A line MkDocs logs at WARNING level or above (the theme's end-of-life notice is not one).
LOGGED_PROBLEM = re.compile(r"^(WARNING|ERROR)\s+-", re.M)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built by the site workflow's build step (scripts/site.py build): the kit
    checks the reference server for the conformance matrix, then ``mkdocs build --strict``
    runs from an empty directory, so every path it reads must resolve against mkdocs.yml."""
    runner_temp = tmp_path_factory.mktemp("runner")
    result = run_step(*BUILD_STEP, cwd=ROOT, runner_temp=runner_temp)
    assert result.returncode == 0, f"site build failed:\n{result.stdout}\n{result.stderr}"
    # Material's end-of-life notice goes to stderr on every build (see
    # docs/maintaining-the-site.md); it is not a warning and does not break --strict.
    assert LOGGED_PROBLEM.search(result.stderr) is None, result.stderr
    return runner_temp / "site"


def test_the_site_builds_from_any_working_directory(site: Path) -> None:
    """Snippets resolve against mkdocs.yml: the benchmarks page includes bench/README.md."""
    readme = (ROOT / "bench" / "README.md").read_text(encoding="utf-8").splitlines()
    plain = next(line for line in readme if line[:1].isalpha() and not set("`[*_<&") & set(line))
    page = read(site, "benchmarks")
    assert " ".join(plain.split()[:6]) in " ".join(page.split()), plain
    assert "--8&lt;--" not in page and "--8<--" not in page


def read(site: Path, page: str) -> str:
    return (site / page / "index.html").read_text(encoding="utf-8")


def spec_pages(site: Path) -> dict[str, str]:
    return {
        path.parent.name: path.read_text(encoding="utf-8")
        for path in (site / "specification").glob("*/index.html")
    }


def test_every_requirement_is_rendered_once_with_its_keyword_and_text(site: Path) -> None:
    pages = spec_pages(site)
    for requirement in requirements():
        anchor = f'id="{requirement.id}"'
        holders = [name for name, text in pages.items() if anchor in text]
        assert len(holders) == 1, f"{requirement.id} rendered in {holders}"
        paragraph = re.search(rf"<p [^>]*{anchor}[^>]*>(.*?)</p>", pages[holders[0]], re.S)
        assert paragraph is not None
        words = re.sub(r"<[^>]+>", "", paragraph.group(1))
        assert f"{requirement.id} {requirement.level}:" in " ".join(words.split())
        plain = " ".join(html.unescape(words).split())
        assert plain.endswith(requirement.text), (requirement.id, plain)


def test_each_message_type_has_a_reference_page(site: Path) -> None:
    spec = catalog()
    for name, entry in spec.types.items():
        page = read(site, f"reference/messages/{name}")
        assert f"<code>{name}</code>" in page
        assert entry.group in page and f"<code>{entry.feature}</code>" in page
        for sender in ("client", "server"):
            vector = schema_dir() / "vectors" / sender / f"{name}.json"
            if entry.payload_schema(sender) and vector.is_file():
                cases = json.loads(vector.read_text(encoding="utf-8"))["tests"]
                first = next(case["data"] for case in cases if case["valid"])
                assert html.escape(json.dumps(first["id"]), quote=False) in page, (name, sender)


def test_registry_tables_are_complete(site: Path) -> None:
    spec = catalog()
    errors = read(site, "reference/error-codes")
    assert all(f'id="{code}"' in errors for code in spec.error_codes)
    closes = read(site, "reference/close-codes")
    assert all(f"<code>{c.code}</code>" in closes for c in spec.close_codes.values())
    roles = read(site, "reference/roles")
    assert all(f"<code>{permission}</code>" in roles for permission in spec.permissions)


def test_requirement_index_lists_every_id_and_its_checks(site: Path) -> None:
    index = read(site, "reference/requirements")
    for requirement in requirements():
        assert f'<span id="{requirement.id}"></span>' in index
    if importlib.util.find_spec("conformance.coverage") is None:
        assert "conformance tests" not in index
        return
    from conformance.coverage import tests_by_requirement

    covered = tests_by_requirement()
    assert covered, "the conformance kit names no requirement"
    assert "<th>conformance tests</th>" in index
    readable = index.replace("<wbr>", "")
    for checks in covered.values():
        assert all(html.escape(check, quote=False) in readable for check in checks)


def test_message_pages_list_the_requirements_their_rule_selects(site: Path) -> None:
    """room_join's page: the requirements naming it, and its permission, password and
    invitation rules, which name the action ("Joining ...") rather than the type."""
    page = read(site, "reference/messages/room_join")
    section = page[page.index('id="requirements"') :]
    listed = set(re.findall(r'href="[^"]*specification/rooms/#(ROOM-\d+)"', section))
    by_text = {
        r.id
        for r in requirements()
        if r.section == "rooms"
        and any(w in r.text for w in ("password", "invitation", "permission"))
    }
    assert len(by_text) >= 3, by_text
    assert by_text | {"ROOM-002", "ROOM-007"} <= listed, listed
    assert "A requirement is listed here when its text names <code>room_join</code>" in section


def test_schemas_are_served_at_their_ids(site: Path) -> None:
    served = 0
    for source in sorted(schema_dir().rglob("*.schema.json")):
        document = json.loads(source.read_text(encoding="utf-8"))
        schema_id = document["$id"]
        if not schema_id.startswith("https://rep-protocol.dev/"):
            continue
        published = site / schema_id.removeprefix("https://rep-protocol.dev/")
        assert json.loads(published.read_text(encoding="utf-8")) == document, schema_id
        served += 1
    assert (site / "schemas/1.0/envelope.schema.json").is_file() and served > 20
    for name in ("messages.json", "requirements.yaml", "asyncapi.yaml"):
        if (schema_dir() / name).is_file():
            assert (site / "schemas/1.0" / name).read_bytes() == (schema_dir() / name).read_bytes()


def test_generated_pages_are_not_committed() -> None:
    assert not (ROOT / "docs" / "reference").exists()


def test_search_index_covers_the_specification(site: Path) -> None:
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    locations = {doc["location"].split("#")[0] for doc in index["docs"]}
    assert {"specification/envelope/", "reference/requirements/"} <= locations


# --- as a reader sees it ----------------------------------------------------------------


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        reason = "chromium is not on PATH (Debian: apt-get install -y chromium)"
        if os.environ.get("REP_REQUIRE_ALL") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
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


def run_chromium(tmp_path: Path, *args: str) -> str:
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
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def dump_dom(tmp_path: Path, url: str) -> str:
    return run_chromium(tmp_path, "--dump-dom", url)


@pytest.mark.network
def test_home_page_renders_with_navigation(served: str, tmp_path: Path) -> None:
    dom = dump_dom(tmp_path, served)
    assert "<h1" in dom and "Realtime Envelope Protocol" in dom
    for target in ("specification/overview/", "reference/", "conformance-guide/"):
        assert f'href="{target}"' in dom or f'href="./{target}"' in dom, target
    overview = dump_dom(tmp_path, served + "specification/overview/")
    assert "Conventions" in overview and "BCP 14" in overview


@pytest.mark.network
def test_requirement_anchors_resolve_in_the_browser(served: str, tmp_path: Path) -> None:
    dom = dump_dom(tmp_path, served + "specification/envelope/#ENV-001")
    assert re.search(r'<p [^>]*id="ENV-001"', dom)
    link = re.search(r'href="([^"]*reference/requirements/#ENV-001)"', dom)
    assert link is not None, "the requirement links to its index entry"
    index = dump_dom(tmp_path, served + "reference/requirements/#ENV-001")
    assert 'id="ENV-001"' in index and 'href="../../specification/envelope/#ENV-001"' in index


@pytest.mark.network
def test_message_catalogue_renders_and_screenshots_are_kept(served: str, tmp_path: Path) -> None:
    dom = dump_dom(tmp_path, served + "specification/messages/")
    for name in catalog().types:
        assert f'href="../../reference/messages/{name}/"' in dom, name
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, url in (("home", served), ("message-catalogue", served + "specification/messages/")):
        target = SCREENSHOTS / f"{name}.png"
        target.unlink(missing_ok=True)
        run_chromium(tmp_path, f"--screenshot={target}", "--window-size=1280,900", url)
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and target.stat().st_size > 10_000


# Loads the requirement index in frames of typical window widths and reports, for each of
# its tables, the header of the last column and whether that column ends inside the page.
LAYOUT_PROBE = """<!doctype html>
<meta charset="utf-8">
<title>layout probe</title>
<pre id="result">pending</pre>
<script>
const widths = [1000, 1280, 1600];
const frames = widths.map((width) => {
  const frame = document.createElement("iframe");
  frame.style.width = width + "px";
  frame.style.height = "900px";
  frame.src = "reference/requirements/";
  document.body.appendChild(frame);
  return frame;
});
function check() {
  const lines = [];
  frames.forEach((frame, i) => {
    frame.contentDocument.querySelectorAll(".rep-index").forEach((box, n) => {
      const last = box.querySelector("thead th:last-child");
      const right = last.getBoundingClientRect().right;
      const edge = box.getBoundingClientRect().right;
      const where = right <= edge + 1 ? "inside" : "cut";
      lines.push([widths[i], n, last.textContent.trim(), where].join("|"));
    });
  });
  document.getElementById("result").textContent = lines.join("\\n");
}
window.addEventListener("load", () => setTimeout(check, 1000));
</script>
"""


@pytest.mark.network
def test_every_column_of_the_requirement_index_is_in_view(
    site: Path, served: str, tmp_path: Path
) -> None:
    (site / "layout-probe.html").write_text(LAYOUT_PROBE, encoding="utf-8")
    dom = run_chromium(
        tmp_path, "--virtual-time-budget=15000", "--dump-dom", served + "layout-probe.html"
    )
    result = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert result is not None and result.group(1) != "pending", dom[-2000:]
    rows = [line.split("|") for line in html.unescape(result.group(1)).splitlines()]
    sections = len(requirements().sections)
    assert len(rows) == 3 * sections, rows
    expected = (
        "conformance tests"
        if "<th>conformance tests</th>" in read(site, "reference/requirements")
        else "verified by"
    )
    assert {header for _, _, header, _ in rows} == {expected}
    cut = [(width, n) for width, n, _, where in rows if where != "inside"]
    assert cut == [], f"the last column is out of view at (window width, table): {cut}"


# --- the conformance matrix, the normative changelog ------------------------------------


def matrix_rows(site: Path) -> list[list[str]]:
    page = read(site, "conformance-matrix")
    table = re.search(r'<div class="rep-matrix">(.*?)</div>', page, re.S)
    assert table is not None, "the matrix table is missing"
    body = table.group(1).split("<tbody>")[1]
    return [re.findall(r"<td>(.*?)</td>", row, re.S) for row in body.split("</tr>")[:-1]]


def test_the_matrix_has_the_reference_row_first_and_the_failing_test_entry(site: Path) -> None:
    rows = matrix_rows(site)
    sections = list(requirements().sections)
    assert all(len(row) == 3 + len(sections) for row in rows), rows
    names = [re.sub(r"<[^>]+>", "", row[0]) for row in rows]
    assert names[0] == "rep-server (reference)", names
    assert "example broken server (test entry)" in names
    broken = rows[names.index("example broken server (test entry)")]
    cells = dict(zip(sections, broken[3:], strict=True))
    assert "rep-cell--fail" in broken[2] and ">fail<" in broken[2]
    assert "rep-cell--fail" in cells["rooms"], "ROOM-004 is broken"
    assert "rep-cell--baselined" in cells["data"], "DATA-004 is accepted by the baseline"
    assert "rep-cell--skip" in cells["cluster"], "a single node skips multi-node operation"


def test_every_matrix_cell_links_to_the_verdicts_of_its_section(site: Path) -> None:
    """Each cell opens the entry's page at the section, where every requirement of the
    report has a row with its verdict, linked to the requirement's anchor."""
    base = site / "conformance-matrix"
    for row in matrix_rows(site):
        links = re.findall(r'href="([^"#]+)#([a-z-]+)"', "".join(row[3:]))
        assert [anchor for _, anchor in links] == list(requirements().sections)
        page_dir = links[0][0]
        page = (base / page_dir / "index.html").read_text(encoding="utf-8")
        for _, anchor in links:
            assert f'id="{anchor}"' in page, (page_dir, anchor)
        report = json.loads((base / (page_dir.rstrip("/") + ".json")).read_text("utf-8"))
        for result in report["requirements"]:
            row_html = re.search(rf'<span id="{result["id"]}"></span>(.*?)</tr>', page, re.S)
            assert row_html is not None, result["id"]
            verdict = f'<strong class="rep-cell--{result["verdict"]}">{result["verdict"]}</strong>'
            assert verdict in row_html.group(1), result["id"]
            if result["id"] in requirements():
                target = f'../../../reference/requirements/#{result["id"]}"'
                assert target in row_html.group(1), result["id"]


def test_the_reference_row_is_the_kit_run_of_this_build(site: Path) -> None:
    from conformance import __version__
    from conformance.reports.schema import report_problems

    published = site / "conformance-matrix" / "rep-server" / f"{__version__}.json"
    report = json.loads(published.read_text(encoding="utf-8"))
    assert report_problems(report) == []
    assert report["target"]["name"] == "rep-server (reference)"
    assert {r["id"] for r in report["requirements"]} == {r.id for r in requirements()}


def test_the_normative_changelog_lists_every_requirement(site: Path) -> None:
    page = read(site, "spec-changelog")
    for requirement in requirements():
        assert f'href="../reference/requirements/#{requirement.id}"' in page, requirement.id
    assert f'id="v{catalog().protocol_version}"' in page


def test_a_plain_build_has_no_development_banner(site: Path) -> None:
    assert "Development version: not normative" not in read(site, "")
    assert "/1.0/reference/requirements/#ROOM-011" in read(site, "versions")
