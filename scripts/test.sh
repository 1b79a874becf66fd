#!/usr/bin/env bash
# The project's tests: sets up .venv (the project with its dev extras) if needed, runs
# ruff and mypy, says which system tools are missing and which tests that skips, then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k vectors
set -euo pipefail
cd "$(dirname "$0")/.."

REP_VENV=.venv REP_SPEC='.[dev]' REP_SETUP_SECONDS=25
source scripts/_venv.sh
ruff check .
mypy
source scripts/_tools.sh
python -m pytest "$@"
