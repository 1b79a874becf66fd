#!/usr/bin/env bash
# The main job: start the bundled reference server, check it with the conformance kit,
# and write the reports (HTML, JSON, JUnit XML, Markdown) to reports/conformance/.
# Extra arguments go to `rep-conformance run`, e.g. scripts/conformance.sh --strict
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
rep-conformance run --reference --report-dir reports/conformance "$@"
