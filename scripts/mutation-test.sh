#!/usr/bin/env bash
# The test command of scripts/mutation.toml: one kit run against the (mutated) reference
# server. Prints the kit's summary and `REP-EXIT <status>` (0 pass, 1 a requirement
# failed, 3 the server did not start or went away) for tools/mutation.py's report.
set -uo pipefail
out=$(mktemp -d)
python -m conformance.cli run --reference --report-dir "$out" >"$out/stdout.txt" 2>&1
status=$?
grep -E '^(checks|requirements):|^  [0-9]+\. ' "$out/stdout.txt" | head -8
echo "REP-EXIT $status"
rm -rf "$out"
exit "$status"
