#!/usr/bin/env bash
# Refreshes tests/fixtures from ../shared/fixtures (the reference data is read-only upstream; the
# in-repo copy lets a plain clone run every test).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-../shared/fixtures}
[[ -d $SRC ]] || { echo "refresh_fixtures.sh: $SRC not found" >&2; exit 1; }
rm -rf tests/fixtures.new
cp -r "$SRC" tests/fixtures.new
chmod -R u+w tests/fixtures.new
rm -rf tests/fixtures
mv tests/fixtures.new tests/fixtures
# the design notes travel with the code, so a plain clone has them too
for doc in DESIGN.md MODEL_NOTES.md BENCHMARK_SPEC.md; do
  [[ -f $SRC/../$doc ]] && mkdir -p docs && cp "$SRC/../$doc" docs/
done
echo "refresh_fixtures.sh: tests/fixtures now mirrors $SRC ($(du -sh tests/fixtures | cut -f1))" >&2
