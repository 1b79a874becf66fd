#!/usr/bin/env bash
# The project's tests: sets up .venv (if needed), then lint, types and the test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k vectors
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ruff check .
mypy
python -m pytest "$@"
