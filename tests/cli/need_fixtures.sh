#!/usr/bin/env bash
# Runs a CLI test script (tests/cli/test_*.sh VLM FIXTURES) when the fixtures are there; otherwise
# skips it (exit 77, CTest's skip code) naming the fix. .ci/run fails on this skip.
# usage: need_fixtures.sh SCRIPT VLM FIXTURES
script=$1 fixtures=$3
if [ ! -f "$fixtures/README.md" ]; then
    echo "SKIPPED: fixtures missing: $fixtures has no README.md; run scripts/setup.sh (or" \
        "scripts/refresh_fixtures.sh DIR) to copy ../shared/fixtures there" >&2
    exit 77
fi
shift
exec bash "$script" "$@"
