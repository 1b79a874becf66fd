# Sourced by scripts/test.sh: say which system tools the tests need are missing from PATH,
# which tests that skips (or fails, with REP_REQUIRE_ALL=1 as .ci/run sets), and the
# apt-get command that installs them. Installs nothing itself.
#
# Each entry: the command, its Debian/Ubuntu package, and the tests that need it.
# tests/test_scripts.py checks this list against the tests that look the tools up.
REP_TOOLS=(
  "redis-server|redis-server|the Redis broker and multi-node tests: tests/reference_server/test_redis_broker.py, tests/reference_server/test_cluster.py, tests/reference_server/test_chaos.py, tests/test_conformance_cluster.py, tests/deploy/test_haproxy.py"
  "haproxy|haproxy|the load-balancer recipe deploy/haproxy/haproxy.cfg, run in front of two nodes: tests/deploy/test_haproxy.py"
  "node|nodejs|the AsyncAPI document checked by the official parser, and the bench's Node ws baseline: tests/test_asyncapi.py, tests/test_bench_node_baseline.py"
  "npm|npm|installing that parser and the baseline's packages on first use (npm ci, needs the npm registry): tests/test_asyncapi.py, tests/test_bench_node_baseline.py"
  "chromium|chromium|the spec site as a browser renders it, and its version selector, and the browser client classes the client kit checks: tests/test_docs_site.py, tests/test_site_versions.py, tests/test_client_conformance_browser.py"
)
rep_missing=()
rep_packages=()
for rep_entry in "${REP_TOOLS[@]}"; do
  IFS='|' read -r rep_tool rep_package rep_gated <<<"$rep_entry"
  if ! command -v "$rep_tool" >/dev/null 2>&1; then
    rep_missing+=("  $rep_tool: $rep_gated")
    rep_packages+=("$rep_package")
  fi
done
if [ ${#rep_missing[@]} -gt 0 ]; then
  if [ "${REP_REQUIRE_ALL:-}" = 1 ]; then
    rep_outcome="fail (REP_REQUIRE_ALL=1)"
  else
    rep_outcome="be skipped"
  fi
  if [ "${EUID:-0}" = 0 ]; then rep_sudo=""; else rep_sudo="sudo "; fi
  {
    echo "scripts/test.sh: not on PATH, so these tests will $rep_outcome:"
    printf '%s\n' "${rep_missing[@]}"
    echo "  to install them (Debian/Ubuntu): ${rep_sudo}apt-get install -y --no-install-recommends ${rep_packages[*]}"
  } >&2
fi
