#!/usr/bin/env bash
# make coverage: the line coverage of `make test` over the engine and the CLI (src/, cli/), from the
# gcov data of an instrumented build (-DVLM_COVERAGE=ON). Writes BUILD/coverage.txt (per file) and
# BUILD/coverage/index.html (per line); prints the totals.
# Usage: scripts/coverage.sh [BUILD]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-cov}
command -v gcovr >/dev/null || { echo "coverage: gcovr is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
mkdir -p "$BUILD/coverage"
gcovr --root . --object-directory "$BUILD" --filter 'src/' --filter 'cli/' \
  --txt "$BUILD/coverage.txt" --html-details "$BUILD/coverage/index.html" --print-summary
echo "coverage: $BUILD/coverage.txt, $BUILD/coverage/index.html"
