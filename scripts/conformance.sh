#!/usr/bin/env bash
# The main job: start the bundled reference server, check it with the conformance kit,
# and write the reports (HTML, JSON, JUnit XML, Markdown) to reports/conformance/.
# Extra arguments go to `rep-conformance run`, e.g. scripts/conformance.sh --strict
#
# Runs in its own environment, .venv-kit, holding the project without its dev extras:
# the kit needs no linters, type checker or site generator (scripts/test.sh's .venv has them).
set -euo pipefail
cd "$(dirname "$0")/.."
REP_VENV=.venv-kit REP_SPEC=. REP_SETUP_SECONDS=15
source scripts/_venv.sh
rep-conformance run --reference --report-dir reports/conformance "$@"
