#!/usr/bin/env bash
# permessage-deflate against Python's `websockets` (tests/python_interop.rs):
# wscodec as server and as client, compression negotiated by both sides'
# defaults, large messages required to be small on the wire both ways.
#
#   bash scripts/python-interop.sh
#
# Makes a venv in target/python-venv (once; again if its Python no longer runs)
# and installs tests/python/requirements.txt into it from PyPI (again only when
# that file changes), then runs the tests with that Python (WSCODEC_PYTHON) and
# prints the byte counts. PYTHON chooses the interpreter for the venv (default
# python3, 3.8 or later); CARGO_CMD replaces `cargo` (e.g.
# CARGO_CMD="flock /tmp/lock cargo").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=$root/target/python-venv
requirements=tests/python/requirements.txt
stamp=$venv/wscodec-requirements.txt

if ! "$venv/bin/python" -c '' 2>/dev/null; then
  echo "== python venv in target/python-venv"
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
fi
if ! cmp -s "$requirements" "$stamp"; then
  echo "== pip install -r $requirements"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-input -r "$requirements"
  cp "$requirements" "$stamp"
fi

echo "== cargo test --all-features --test python_interop"
WSCODEC_PYTHON=$venv/bin/python ${CARGO_CMD:-cargo} test --all-features \
  --test python_interop -- --nocapture --test-threads=1
