#!/usr/bin/env bash
# Run the whole suite on every Python 3.11+ that pyenv has on this machine (not part of CI:
# it takes a few minutes). Usage: bash benchmarks/pythons.sh
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for py in "$HOME"/.pyenv/versions/3.1[1-9]*/bin/python; do
  [ -x "$py" ] || continue
  version=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
  env="$(mktemp -d)/venv"
  "$py" -m venv "$env" && "$env/bin/pip" install -q -e '.[test]' >/dev/null 2>&1
  if "$env/bin/python" -m pytest -q -p no:cacheprovider > "/tmp/keyservices-py$version.log" 2>&1; then
    echo "Python $version: $(tail -n 1 "/tmp/keyservices-py$version.log")"
  else
    echo "Python $version: FAILED (see /tmp/keyservices-py$version.log)"; status=1
  fi
done
exit $status
