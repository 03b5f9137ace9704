#!/usr/bin/env bash
# make lint: clang-tidy (.clang-tidy: the checks and why) over the engine and the CLI, using the
# compile commands of BUILD (default build/). Exits non-zero when any check fires.
# Usage: scripts/lint.sh [BUILD] [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
JOBS=${2:-$(nproc)}
command -v clang-tidy >/dev/null || { echo "lint: clang-tidy is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
[[ -f "$BUILD/compile_commands.json" ]] || { echo "lint: $BUILD/compile_commands.json is missing (make configure)" >&2; exit 1; }
# The CUDA sources are compiled by nvcc, whose flags clang does not take: they are left out.
files=$(git ls-files 'src/*.c' 'cli/*.c')
# gcc-only warning flags in the compile commands are not errors for clang
echo "$files" | xargs -P "$JOBS" -n 4 clang-tidy -p "$BUILD" --quiet --extra-arg=-Wno-unknown-warning-option \
  2> >(grep -v '^[0-9]* warnings\? generated\.$' >&2)
echo "lint: clang-tidy clean ($(echo "$files" | wc -l) files)"
