#!/usr/bin/env bash
# Creates (once) a virtualenv with Microsoft's Python IoT SDKs from python-requirements.txt, cached outside the
# repo keyed by the Python version and the requirements' hash, and prints its python's path on stdout (progress on
# stderr). Safe to run concurrently: a lock serialises creation. Used by the tests through @kedge/testing's pythonSdk().
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
req="$here/python-requirements.txt"
py=${KEDGE_PYTHON:-python3}
command -v "$py" >/dev/null || { echo "python.sh: $py not found (install Python 3)" >&2; exit 1; }
ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
key="py${ver}-$(sha256sum "$req" | cut -c1-12)"
root="${KEDGE_PYTHON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kedge-python}"
dir="$root/$key"
mkdir -p "$root"
exec 9>"$root/.lock"
flock 9
if [ ! -f "$dir/.complete" ]; then
  rm -rf "$dir"
  echo "python.sh: creating $dir (first run only)" >&2
  "$py" -m venv "$dir" >&2 || { echo "python.sh: '$py -m venv' failed (on Debian: apt install python3-venv)" >&2; exit 1; }
  "$dir/bin/pip" install --disable-pip-version-check -q -r "$req" >&2
  touch "$dir/.complete"
fi
echo "$dir/bin/python"
