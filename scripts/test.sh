#!/usr/bin/env bash
# Set up everything the test suite needs, then run it.
#
#   bash scripts/test.sh [pytest args...]
#
# Creates ./.venv (if missing) with ckpt and its test dependencies, installs
# Debian's redis-server, postgresql, chromium and chromium-driver when they
# are missing and we may (root or sudo), and runs the whole suite.  Tests of
# a backend whose server cannot be started, or of the dashboard in a browser
# that cannot start, are skipped locally, never in CI (CI=true makes them fail).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'

# Debian packages: redis-server and postgresql for their backends, chromium and
# its driver for the dashboard's browser tests.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") \
            || echo "warning: could not install ${missing[*]}; their tests will be skipped" >&2
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") \
            || echo "warning: could not install ${missing[*]}; their tests will be skipped" >&2
    else
        echo "note: ${missing[*]} not installed; their tests will be skipped" >&2
    fi
fi

exec .venv/bin/python -m pytest "$@"
