#!/usr/bin/env bash
# Prints the path of a pinned uv, installing it from PyPI into $THRIFTY_CACHE/tools first if needed.
set -euo pipefail

UV_VERSION=${UV_VERSION:-0.13.9}
cache="${THRIFTY_CACHE:-$HOME/.cache/thrifty}"
python="${PYTHON:-python3}"
dir="$cache/tools/uv-$UV_VERSION"

if [[ ! -x "$dir/bin/uv" ]]; then
  rm -rf "$dir"
  "$python" -m venv "$dir" >&2
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" >&2
fi
echo "$dir/bin/uv"
