#!/usr/bin/env bash
# `npm test`: brings up the real infrastructure the integration tests drive (idempotent,
# cached: seconds when it is already there), then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
node bin/mlink.js setup
exec npx vitest run "$@"
