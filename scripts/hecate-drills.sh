#!/usr/bin/env bash
# Disruptive drills, a thin wrapper around `hecate drill` (the logic lives in hecate).
#   scripts/hecate-drills.sh list
#   scripts/hecate-drills.sh run NAME [--execute] [--yes] [--config F] [--json]
# Dry run unless --execute; against a real cluster --execute asks for a confirmation.
set -euo pipefail
cd "$(dirname "$0")/.."
hecate=".venv/bin/hecate"
[[ -x "$hecate" ]] || hecate="$(command -v hecate)"
case "${1:-}" in
    list) shift; exec "$hecate" drill list "$@" ;;
    run) shift; exec "$hecate" drill run "$@" ;;
    *) echo "usage: $0 list | run NAME [--execute] [--yes] [--config F] [--json]" >&2; exit 2 ;;
esac
