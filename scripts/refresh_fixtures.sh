#!/usr/bin/env bash
# Makes tests/fixtures a copy of the reference fixtures (default ../shared/fixtures, read-only
# upstream). tests/fixtures is not tracked: scripts/setup.sh runs this whenever the source exists,
# and the tests that need the fixtures are skipped, naming this script, when they are missing.
# usage: scripts/refresh_fixtures.sh [SRC]
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-../shared/fixtures}
[[ -d $SRC ]] || { echo "refresh_fixtures.sh: $SRC not found" >&2; exit 1; }
DST=tests/fixtures
# Already a copy of this source (same file list, sizes and times): nothing to do.
stamp() { (cd "$1" && find . -printf '%P %s %T@ %y\n' | LC_ALL=C sort | md5sum | cut -d' ' -f1); }
want=$(stamp "$SRC")
if [[ -f $DST/.source-stamp && $(cat "$DST/.source-stamp") == "$want" ]]; then
  exit 0
fi
rm -rf "$DST.new"
cp -R "$SRC" "$DST.new"   # -R keeps symbolic links as links (the model folders share one tokenizer.json)
chmod -R u+w "$DST.new"
# A link that reached us as a small text file holding its target (a checkout without symlink
# support) becomes a link again, when the target exists inside the copy.
find "$DST.new" -type f -size -1024c -name '*.json' -print0 | while IFS= read -r -d '' f; do
  target=$(head -c 512 "$f")
  case $target in
    ../*|./*) [[ $target != *$'\n'* && -f $(dirname "$f")/$target ]] && ln -sf "$target" "$f" ;;
  esac
done
echo "$want" > "$DST.new/.source-stamp"
rm -rf "$DST"
mv "$DST.new" "$DST"
echo "refresh_fixtures.sh: tests/fixtures now mirrors $SRC ($(du -shL tests/fixtures | cut -f1))" >&2
