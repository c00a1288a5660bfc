#!/usr/bin/env bash
# make shift-kill: issue 15's kill test at full size. SIGKILLs `nscap shift`
# at random points during a shift of the 200k-file mktree tree (and twice
# right after a chown that cleared caps or setuid bits), runs it again, and
# compares the tree with a copy shifted in one run (TestShiftKill, with
# getcap -n, getfacl -n and sha256 as oracles). On an ext4 in RAM
# (../shared/bench/scratchfs.sh). Needs root.
#
#   FILES=200000 make shift-kill
set -euo pipefail
cd "$(dirname "$0")/.."
kit=${BENCH_KIT:-$PWD/../shared/bench}
FILES=${FILES:-200000}
SCR=${KILL_DIR:-/tmp/nscap-kill}
[ "$(id -u)" = 0 ] || { echo "make shift-kill needs root" >&2; exit 2; }
bash "$kit/scratchfs.sh" up "$SCR" 8G >/dev/null
tree=$SCR/tree-$FILES
if [ ! -d "$tree" ]; then
  echo "building tree: $FILES files"
  python3 "$kit/mktree.py" --files "$FILES" --data-scale 0.02 --out "$tree" --uid-base 100000
fi
# The test shifts the tree to 0:300000:65536: bring it back first when a
# previous run left it there.
if [ "$(stat -c %u "$tree")" = 300000 ]; then
  go run ./cmd/nscap shift -q --foreign-caps host --from 0:300000:65536 --to 0:100000:65536 "$tree"
fi
mkdir -p "$SCR/work"
NSCAP_TEST_DIR=$SCR/work NSCAP_SHIFT_KILL_TREE=$tree NSCAP_SHIFT_KILL_BASE=100000 \
  go test -count=1 -v -timeout 30m -run '^TestShiftKill$' ./backup/
