#!/usr/bin/env bash
# Creates the project's development environment from requirements/dev.lock, or reuses a cached one.
#
# The environment (every extra, ray[rllib] and torch included, and the dev dependency groups:
# about 6 GB) lives outside the checkout, under $THRIFTY_CACHE/venv/<hash of dev.lock>, so every
# clone on this machine shares it and a fresh clone does not reinstall it. The checkout itself is
# then installed in editable mode (seconds), and .venv points at the cached environment.
#
# uv (a pinned release from PyPI, kept in $THRIFTY_CACHE/tools) installs the lock exactly; it also
# writes the locks: `hack/lock.sh`. The image installs requirements/image.lock with plain pip.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${THRIFTY_CACHE:-$HOME/.cache/thrifty}"
python="${PYTHON:-python3}"
uv="$(PYTHON="$python" hack/uv.sh)"
key="$( (cat requirements/dev.lock; "$python" --version) | sha256sum | cut -c1-16)"
target="$cache/venv/$key"
start=$(date +%s)

if [[ ! -f "$target/.complete" ]]; then
  echo "creating the Python environment in $target (first time on this machine: several minutes)"
  rm -rf "$target"
  mkdir -p "$cache/venv"
  "$uv" venv --quiet --python "$python" "$target"
  # setuptools for the editable install below (the build backend, without build isolation).
  "$uv" pip sync --quiet --python "$target/bin/python" requirements/dev.lock
  "$uv" pip install --quiet --python "$target/bin/python" "setuptools>=77"
  touch "$target/.complete"
fi
# Link this checkout (editable, no dependencies: the lock has them all).
"$uv" pip install --quiet --python "$target/bin/python" --no-deps --no-build-isolation -e .
if [[ -e .venv && ! -L .venv ]]; then
  rm -rf .venv
fi
ln -sfn "$target" .venv
echo "python environment ready in $(( $(date +%s) - start )) s ($target)"
