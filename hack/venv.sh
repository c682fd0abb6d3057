#!/usr/bin/env bash
# Creates the project's Python environment, or reuses a cached one.
#
# The environment (with the `train` extra: ray[rllib] and torch, about 6 GB) lives outside the
# checkout, under $THRIFTY_CACHE/venv/<hash of pyproject.toml>, so every clone on this machine
# shares it and a fresh clone does not reinstall it. The checkout itself is then installed in
# editable mode (seconds), and .venv points at the cached environment.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${THRIFTY_CACHE:-$HOME/.cache/thrifty}"
python="${PYTHON:-python3}"
key="$( (cat pyproject.toml; "$python" --version) | sha256sum | cut -c1-16)"
target="$cache/venv/$key"
start=$(date +%s)

if [[ ! -f "$target/.complete" ]]; then
  echo "creating the Python environment in $target (first time on this machine: several minutes)"
  rm -rf "$target"
  mkdir -p "$cache/venv"
  "$python" -m venv "$target"
  "$target/bin/python" -m pip install -q --upgrade pip "setuptools>=77"
  # Dependencies only; the checkout is linked below. Installing '.[...]' pulls the deps in.
  "$target/bin/python" -m pip install -q '.[test,train]'
  touch "$target/.complete"
fi
# Link this checkout (editable); no build isolation, so no download on a warm machine.
"$target/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
if [[ -e .venv && ! -L .venv ]]; then
  rm -rf .venv
fi
ln -sfn "$target" .venv
echo "python environment ready in $(( $(date +%s) - start )) s ($target)"
