#!/usr/bin/env bash
# make bench: time nscap against its peers on the same tree, in one run,
# alternating, on an ext4 in RAM (../shared/bench/scratchfs.sh). Needs root.
#
#   FILES=200000 SCALE=0.25 ROUNDS=5 make bench
#   BENCH_ONLY=get make bench        # get | backup | restore
#   FILES=1000000 SCALE=0.05 BENCH_FS_SIZE=24G BENCH_DIR=/tmp/nscap-bench-1m make bench
#     (8G of ext4 holds about 520k inodes: give a 1M-file tree a bigger fs)
#
# Prints, per pair, the median wall time, peak RSS and the ratio nscap/peer.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
kit=${BENCH_KIT:-$repo/../shared/bench}
FILES=${FILES:-200000}
SCALE=${SCALE:-0.25}
ROUNDS=${ROUNDS:-5}
ONLY=${BENCH_ONLY:-get backup restore}
SCR=${BENCH_DIR:-/tmp/nscap-bench}
SIZE=${BENCH_FS_SIZE:-8G}

[ "$(id -u)" = 0 ] || { echo "make bench needs root (scratchfs, mktree)" >&2; exit 2; }
for t in getcap tar gcc python3 mkfs.ext4; do
  command -v "$t" >/dev/null || { echo "bench: $t missing" >&2; exit 2; }
done

bin=$SCR.bin
mkdir -p "$bin"
go build -o "$bin/nscap" ./cmd/nscap
go build -o "$bin/benchcmp" ./internal/tools/benchcmp
gcc -O2 -pthread -o "$bin/floor" "$kit/floor.c"

bash "$kit/scratchfs.sh" up "$SCR" "$SIZE" >/dev/null
tree=$SCR/tree-$FILES-$SCALE
if [ ! -d "$tree" ]; then
  echo "building tree: $FILES files, data scale $SCALE"
  python3 "$kit/mktree.py" --files "$FILES" --data-scale "$SCALE" --out "$tree" >/dev/null
fi
entries=$(find "$tree" | wc -l)
bytes=$(du -sb "$tree" | cut -f1)
echo "tree: $tree: $entries entries, $((bytes / 1000000)) MB, kernel $(uname -r), $(nproc) cores"
# warm the cache
getcap -r "$tree" >/dev/null 2>&1 || true

N="$bin/nscap"
has() { "$N" help "$1" >/dev/null 2>&1; }

for what in $ONLY; do
  case $what in
  get)
    "$bin/benchcmp" -n "$ROUNDS" -title "== scan: nscap get -r -n vs getcap -r -n (floor = floor.c variant 2, 2 threads)" \
      "getcap=getcap -r -n $tree >/dev/null 2>&1" \
      "nscap=$N get -r -n $tree >/dev/null" \
      "floor=$bin/floor 2 2 $tree >/dev/null"
    ;;
  backup)
    has backup || { echo "== backup: nscap backup not available yet, skipped"; continue; }
    "$bin/benchcmp" -n "$ROUNDS" -prep "rm -f $SCR/out-tar.tar $SCR/out-nscap.tar" \
      -title "== backup: nscap backup vs tar --xattrs --xattrs-include='*' -cf (same fs); --verify vs tar --verify" \
      "tar=tar --xattrs --xattrs-include='*' -cf $SCR/out-tar.tar -C $tree ." \
      "nscap=$N backup --no-progress -q -o $SCR/out-nscap.tar $tree" \
      "tar-W=tar --xattrs --xattrs-include='*' --verify -cf $SCR/out-tar.tar -C $tree ." \
      "verify=$N backup --verify --no-progress -q -o $SCR/out-nscap.tar $tree"
    ;;
  restore)
    has restore || { echo "== restore: nscap restore not available yet, skipped"; continue; }
    [ -f "$SCR/archive.tar" ] || tar --xattrs --xattrs-include='*' -cf "$SCR/archive.tar" -C "$tree" .
    "$bin/benchcmp" -n "$ROUNDS" -warm=false -prep "rm -rf $SCR/dest && mkdir $SCR/dest && sync" \
      -title "== restore: nscap restore vs tar --xattrs --xattrs-include='*' -xpf (empty dir)" \
      "tar=tar --xattrs --xattrs-include='*' -xpf $SCR/archive.tar -C $SCR/dest" \
      "nscap=$N restore --no-progress -q $SCR/archive.tar $SCR/dest" \
      "direct=$N restore --direct --no-progress -q $SCR/archive.tar $SCR/dest"
    ;;
  esac
done
echo "(leave the scratch fs mounted for reuse; remove with: $kit/scratchfs.sh down $SCR)"
