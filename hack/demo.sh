#!/usr/bin/env bash
# The main job, on this machine: build what is missing, bring the local GPU cluster up, install
# AdapterOps with Helm, run the operator under the chart's identity, and walk the examples through.
# The cluster stays up afterwards (`hack/cluster.sh down` removes it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
hack/setup.sh
# .venv/bin on PATH: `kubectl adapterops` (the plugin) resolves to the project's entry point.
PATH="$root/.venv/bin:$PATH" PYTHONPATH="$root/hack" exec .venv/bin/python -m testworld.demo "$@"
