#!/usr/bin/env bash
# Are pyproject's dependency floors real? Installs the lowest versions it allows for every direct
# dependency (uv's --resolution lowest-direct) with the test extra into a throw-away venv and runs
# the pure unit tests (`make test-fast`'s selection) with make test's plugins (--cov, --timeout).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
MARKERS=${FAST_MARKERS:-not interop and not netns and not vm and not nm}
work=$(mktemp -d /tmp/cygnet-floors.XXXXXX)
trap 'rm -rf "$work"' EXIT
# uv does not read pip's settings: give it the machine's CA bundle the way pip gets it
if [ -n "${PIP_CERT:-}" ]; then export SSL_CERT_FILE="$PIP_CERT"; fi
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q uv
"$work/venv/bin/uv" pip install -q --python "$work/venv/bin/python" --resolution lowest-direct \
  -e "$REPO[test]"
echo "check-floors: lowest direct versions:"
"$work/venv/bin/uv" pip list --python "$work/venv/bin/python" 2>/dev/null \
  | grep -iE '^(cryptography|pyopenssl|pyroute2|dbus-fast|keyring|keyrings.alt|pytest|pytest-cov|pytest-timeout|hypothesis) ' \
  | sed 's/^/  /'
cd "$REPO"
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider -m "$MARKERS" --timeout=600 --cov=ike --cov-report= 
