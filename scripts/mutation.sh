#!/usr/bin/env bash
# Mutation testing: how many single-point bugs in reference_server/core/ the conformance
# kit catches. Not part of CI: every mutant is one full kit run (15-30 s).
#
#   scripts/mutation.sh [MUTANTS] [SEED]     default: 40 mutants, seed 1
#
# Runs on a copy of the committed tree (git archive HEAD) in a temporary directory, so the
# working tree is never mutated; PYTHONPATH points the kit and the server at the copy.
# Prints the score and every surviving mutant; the session database stays in
# reports/mutation/ (`python tools/mutation.py report reports/mutation/session.sqlite`).
set -euo pipefail
cd "$(dirname "$0")/.."
MUTANTS=${1:-40}
SEED=${2:-1}
REP_VENV=.venv-mutation REP_SPEC=".[mutation]" REP_SETUP_SECONDS=60
source scripts/_venv.sh
root=$PWD
mkdir -p reports/mutation
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git archive HEAD | tar -x -C "$work"
cd "$work"
export PYTHONPATH="$work"
session="$root/reports/mutation/session.sqlite"
rm -f "$session"
cosmic-ray init scripts/mutation.toml "$session"
python "$root/tools/mutation.py" sample "$session" --keep "$MUTANTS" --seed "$SEED"
echo "baseline: the unmutated copy must pass the kit" >&2
bash scripts/mutation-test.sh >&2
cosmic-ray exec scripts/mutation.toml "$session"
python "$root/tools/mutation.py" report "$session"
