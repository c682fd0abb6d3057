#!/usr/bin/env bash
# Writes the lock files from pyproject.toml (run after changing a dependency; commit the result):
#   requirements/image.lock  the runtime only, with hashes: what the Dockerfile installs
#   requirements/dev.lock    every extra and the dev dependency groups: what hack/venv.sh installs
# Both resolve for CPython 3.11 on x86_64 glibc Linux, the image's platform.
# UPGRADE=1 moves every pin to the newest release; otherwise the current pins are kept.
set -euo pipefail
cd "$(dirname "$0")/.."

uv="$(hack/uv.sh)"
common=(--python-version 3.11 --python-platform x86_64-manylinux_2_28 --quiet)
if [[ -n "${UPGRADE:-}" ]]; then common+=(--upgrade); fi

"$uv" pip compile pyproject.toml "${common[@]}" --generate-hashes \
  --custom-compile-command hack/lock.sh -o requirements/image.lock
# Constrained by the image's pins, so development tests the versions the image ships.
"$uv" pip compile pyproject.toml "${common[@]}" --all-extras --group dev --constraint requirements/image.lock \
  --custom-compile-command hack/lock.sh -o requirements/dev.lock
