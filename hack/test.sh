#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, static checks, then pytest
# (unit tests, trial-runner tests on CPU, and the cluster tests on a real local control plane).
#   hack/test.sh [pytest args...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
hack/setup.sh

echo "==> ruff, mypy" >&2
.venv/bin/ruff check operator training-jobs tests hack/testworld hack/generate.py hack/generators hack/imagebuild hack/set-version.py bench
.venv/bin/mypy

echo "==> pytest" >&2
exec .venv/bin/pytest "$@"
