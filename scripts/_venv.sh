# Sourced by the scripts: make a virtual environment with Python >= 3.11, install the
# project into it, and activate it. The caller sets
#   REP_VENV    the directory, e.g. .venv-kit
#   REP_SPEC    what to install, e.g. "." (the project alone) or ".[dev]"
#   REP_SETUP_SECONDS  roughly how long a first install takes, for the message
# The install is redone when pyproject.toml is newer than the environment's stamp or the
# stamp names another REP_SPEC, so a changed dependency list is picked up on the next run.
: "${REP_VENV:?}" "${REP_SPEC:?}"
PYTHON=${PYTHON:-python3}
"$PYTHON" - <<'PY' || { echo "Python 3.11 or newer is required (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
stamp="$REP_VENV/.rep-installed"
stale() { [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$(cat "$stamp")" != "$REP_SPEC" ]; }
if [ ! -x "$REP_VENV/bin/python" ]; then
  echo "setting up $REP_VENV (first run only, ~${REP_SETUP_SECONDS:-60} s): pip install -e '$REP_SPEC'" >&2
  "$PYTHON" -m venv "$REP_VENV" || {
    echo "could not create $REP_VENV (Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
  }
  # Keep the environment out of git, as Python 3.13's venv does by itself.
  printf '*\n' >"$REP_VENV/.gitignore"
elif stale; then
  echo "updating $REP_VENV (pyproject.toml changed, or the last install did not finish): pip install -e '$REP_SPEC'" >&2
fi
# shellcheck disable=SC1091
source "$REP_VENV/bin/activate"
if stale; then
  started=$SECONDS
  python -m pip install --quiet --disable-pip-version-check -e "$REP_SPEC"
  printf '%s\n' "$REP_SPEC" >"$stamp"
  echo "$REP_VENV ready ($((SECONDS - started)) s)" >&2
fi
