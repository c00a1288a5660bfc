#!/usr/bin/env bash
# make bench: time nscap against its peers on the same tree, in one run,
# alternating, on an ext4 in RAM (../shared/bench/scratchfs.sh). Needs root.
#
#   FILES=200000 SCALE=0.25 ROUNDS=5 make bench
#   BENCH_ONLY=get make bench        # get | backup | restore | shift | shift-check
#   FILES=1000000 SCALE=0.05 BENCH_FS_SIZE=24G BENCH_DIR=/tmp/nscap-bench-1m make bench
#     (8G of ext4 holds about 520k inodes: give a 1M-file tree a bigger fs)
#   BENCH_BASE=5a5d438 make bench    # also time nscap as built at that commit
#     ("base", alternating in the same run): a change is no slower than before
#
# Prints, per pair, the median wall time, peak RSS and the ratio nscap/peer.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
kit=${BENCH_KIT:-$repo/../shared/bench}
FILES=${FILES:-200000}
SCALE=${SCALE:-0.25}
ROUNDS=${ROUNDS:-5}
ONLY=${BENCH_ONLY:-get backup restore shift}
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
B=
if [ -n "${BENCH_BASE:-}" ]; then
  # nscap as it was at BENCH_BASE, built from a clean export of that commit.
  base_src=$(mktemp -d)
  git archive "$BENCH_BASE" | tar -x -C "$base_src"
  (cd "$base_src" && go build -o "$bin/nscap-base" ./cmd/nscap)
  rm -rf "$base_src"
  B="$bin/nscap-base"
fi
# base NAME=CMD: the same command run by the base build, when there is one
# (the output path suffixed so that both never share a file).
base() { [ -n "$B" ] && printf '%s\n' "base-${1%%=*}=${1#*=}" | sed "s|$bin/nscap |$B |g; s|out-nscap.tar|out-base.tar|g"; }
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

# --- shift: nscap shift vs scripts/shift-recipe.sh vs LXD's fuidshift ---------------------
# The shifts run on a copy of the tree ($stree; the other benches keep theirs), with a few
# POSIX ACLs (access and default) and setgid files added, since mktree makes none. Every
# timed run shifts $stree from A (mktree's container range) to B: the prep puts it back to
# A first, untimed, with `nscap shift` B->A plus the pristine security.capability values
# (setfattr --restore of a dump taken at A), so that every tool starts from the very same
# state, caps included, even after fuidshift, which loses them. The check (shift-check, run
# first) proves the prep: after each tool's shift and its reset the tree equals the pristine
# one. The copy is removed at the end: 8G of ext4 holds about 520k inodes, and restore's
# destination needs its own 221k.
stree=$SCR/shift-tree
SA=0:100000:65536 SB=0:200000:65536 # the tree's range (mktree --uid-base), and where it goes
LXD_VERSION=${LXD_VERSION:-v0.0.0-20241209155119-76da976c6ee7} # github.com/canonical/lxd
fuid_why=

shift_setup() {
  rm -rf "$stree"
  cp -a "$tree" "$stree"
  local a=100000
  find "$stree" -type d | awk 'NR % 97 == 0' | xargs -d '\n' setfacl -m \
    "u:$((a + 33)):rwx,g:$((a + 42)):rx,d:u::rwx,d:g::rx,d:o::rx,d:u:$((a + 33)):rwx,d:g:$((a + 4)):rx"
  find "$stree" -type f | awk 'NR % 211 == 0' | xargs -d '\n' setfacl -m "u:$((a + 1000)):rw,g:$((a + 100)):r"
  find "$stree" -type f -perm /4000 | awk 'NR <= 20' | xargs -d '\n' setfacl -m "u:$((a + 2)):rx"
  find "$stree" -type f -perm -0010 ! -perm /6000 | awk 'NR % 500 == 0' | xargs -d '\n' chmod g+s
  # (getfattr -n exits 1: most files have no such attribute)
  getfattr -R -P -h -n security.capability -e hex --absolute-names "$stree" 2>/dev/null >"$SCR/shift-caps.dump" || true
  grep -q '^security.capability=' "$SCR/shift-caps.dump" || { echo "bench: no caps in $stree?" >&2; exit 1; }
}
shift_reset="[ \"\$(stat -c %u $stree)\" = 100000 ] || $N shift -q --no-progress --foreign-caps host --from $SB --to $SA $stree; setfattr -h --restore=$SCR/shift-caps.dump"

# snap DIR: what the shifts must agree on, one file each: owners and modes, getcap -r -n,
# getfacl -R -n, the raw security.capability bytes (revision 2 or 3).
snap() {
  mkdir -p "$1"
  (
    cd "$stree"
    find . -printf '%P %y %U %G %m\n' | LC_ALL=C sort >"$1/owners"
    getcap -r -n . | LC_ALL=C sort >"$1/getcap"
    getfacl -R -P -n . 2>/dev/null >"$1/getfacl"
    { getfattr -R -P -h -n security.capability -e hex . 2>/dev/null || true; } |
      awk '/^# file: /{f=substr($0,9)} /^security/{print f, $0}' | LC_ALL=C sort >"$1/rawcaps"
  )
}
# same A B: A and B agree on every part, or print the differences.
same() {
  local f bad=0
  for f in owners getcap getfacl rawcaps; do
    cmp -s "$1/$f" "$2/$f" && continue
    echo "   $f differ: $(diff "$1/$f" "$2/$f" | grep -c '^[<>]') lines (<: first, >: second), e.g.:"
    diff "$1/$f" "$2/$f" | awk 'NR <= 6' | sed 's/^/     /'
    bad=1
  done
  return $bad
}

build_fuidshift() {
  [ -x "$bin/fuidshift" ] && return 0
  if [ ! -e /usr/include/sys/capability.h ] || [ ! -e /usr/include/sys/acl.h ]; then
    fuid_why="needs the C headers of libcap and libacl (apt-get install libcap-dev libacl1-dev)"
    return 1
  fi
  # The module proxy serves this version but refuses the version list, which `go install
  # pkg@version` reads for deprecations: build from a throwaway module instead.
  local mod=$bin/fuidshift-mod
  rm -rf "$mod" && mkdir -p "$mod"
  printf 'module fuidshiftbuild\n\ngo 1.23\n\nrequire github.com/canonical/lxd %s\n' "$LXD_VERSION" >"$mod/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/canonical/lxd/fuidshift"\n' >"$mod/tools.go"
  if ! (cd "$mod" && GOFLAGS=-mod=mod go mod tidy && GOFLAGS=-mod=mod go build -o "$bin/fuidshift" \
    github.com/canonical/lxd/fuidshift) >"$mod/build.log" 2>&1; then
    fuid_why="github.com/canonical/lxd/fuidshift@$LXD_VERSION does not build: $(tail -3 "$mod/build.log" | tr '\n' ' ')"
    return 1
  fi
}

shift_nscap="$N shift -q --no-progress --foreign-caps host --from $SA --to $SB $stree 2>$SCR/shift-nscap.err"
shift_recipe="bash $repo/scripts/shift-recipe.sh 100000 200000 65536 $stree"
# fuidshift's map is CONTAINER:HOST: the tree's ids, seen as the "container" ones, go to B.
shift_fuid="$bin/fuidshift $stree b:100000:200000:65536"

# shift_check: nscap's shift, its reset, the recipe's shift (equal to nscap's), fuidshift's
# (compared, not required equal), each reset to the pristine tree.
shift_check() {
  local c=$bin/shift-check ok=1
  rm -rf "$c"
  echo "== shift check: nscap shift --foreign-caps host vs scripts/shift-recipe.sh on $stree ($SA -> $SB)"
  snap "$c/pristine"
  sh -c "$shift_nscap" || { echo "   nscap shift failed: $(head -3 "$SCR/shift-nscap.err")"; return 1; }
  snap "$c/nscap"
  echo "   nscap changed: $(diff "$c/pristine/owners" "$c/nscap/owners" | grep -c '^>') owners/modes lines," \
    "$(diff "$c/pristine/getcap" "$c/nscap/getcap" | grep -c '^>') of $(wc -l <"$c/pristine/getcap") getcap lines" \
    "(the revision-2 ones stay), $(diff "$c/pristine/getfacl" "$c/nscap/getfacl" | grep -c '^>') getfacl lines"
  sh -c "$shift_reset" && snap "$c/reset" && same "$c/pristine" "$c/reset" ||
    { echo "   the reset after nscap does not give the pristine tree back"; return 1; }
  sh -c "$shift_recipe"
  snap "$c/recipe"
  if same "$c/nscap" "$c/recipe"; then
    echo "   shell recipe == nscap: owners, modes, getcap -r -n, getfacl -R -n, raw caps all equal"
  else
    echo "   shell recipe != nscap (above)"; ok=0
  fi
  sh -c "$shift_reset" && snap "$c/reset" && same "$c/pristine" "$c/reset" ||
    { echo "   the reset after the recipe does not give the pristine tree back"; return 1; }
  if [ -x "$bin/fuidshift" ]; then
    sh -c "$shift_fuid" || echo "   fuidshift exited $?"
    snap "$c/fuid"
    echo "   fuidshift vs nscap:"
    same "$c/nscap" "$c/fuid" || true
    echo "   fuidshift keeps $(wc -l <"$c/fuid/getcap") of $(wc -l <"$c/nscap/getcap") getcap lines"
    sh -c "$shift_reset" && snap "$c/reset" && same "$c/pristine" "$c/reset" ||
      { echo "   the reset after fuidshift does not give the pristine tree back"; return 1; }
  fi
  rm -rf "$c"
  [ $ok = 1 ]
}

for what in $ONLY; do
  case $what in
  get)
    "$bin/benchcmp" -n "$ROUNDS" -title "== scan: nscap get -r -n vs getcap -r -n (floor = floor.c variant 2, 2 threads)" \
      "getcap=getcap -r -n $tree >/dev/null 2>&1" \
      "nscap=$N get -r -n $tree >/dev/null" \
      ${B:+"$(base "nscap=$N get -r -n $tree >/dev/null")"} \
      "floor=$bin/floor 2 2 $tree >/dev/null"
    ;;
  backup)
    has backup || { echo "== backup: nscap backup not available yet, skipped"; continue; }
    "$bin/benchcmp" -n "$ROUNDS" -prep "rm -f $SCR/out-tar.tar $SCR/out-nscap.tar $SCR/out-base.tar" \
      -title "== backup: nscap backup vs tar --xattrs --xattrs-include='*' -cf (same fs); --verify vs tar --verify" \
      "tar=tar --xattrs --xattrs-include='*' -cf $SCR/out-tar.tar -C $tree ." \
      "nscap=$N backup --no-progress -q -o $SCR/out-nscap.tar $tree" \
      ${B:+"$(base "nscap=$N backup --no-progress -q -o $SCR/out-nscap.tar $tree")"} \
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
      ${B:+"$(base "nscap=$N restore --no-progress -q $SCR/archive.tar $SCR/dest")"} \
      "direct=$N restore --direct --no-progress -q $SCR/archive.tar $SCR/dest"
    rm -rf "$SCR/dest" # its inodes: the shift's copy of the tree needs them
    ;;
  shift | shift-check)
    has shift || { echo "== shift: nscap shift not available yet, skipped"; continue; }
    for t in getfacl setfacl getfattr setfattr setcap; do
      command -v "$t" >/dev/null || { echo "bench: $t missing (acl, attr, libcap2-bin)" >&2; exit 2; }
    done
    build_fuidshift || echo "== shift: LXD's fuidshift not built: $fuid_why"
    shift_setup
    shift_check || { echo "== shift: the check failed (above); not timed" >&2; rm -rf "$stree"; exit 1; }
    if [ "$what" = shift ]; then
      peers=("recipe=$shift_recipe" "nscap=$shift_nscap")
      [ -n "$B" ] && peers+=("$(base "nscap=$shift_nscap")")
      [ -x "$bin/fuidshift" ] && peers+=("fuidshift=$shift_fuid")
      "$bin/benchcmp" -n "$ROUNDS" -warm=false -prep "$shift_reset" \
        -title "== shift: nscap shift vs scripts/shift-recipe.sh (find/xargs chown -h, getfacl/setfacl --restore, getcap/setcap -n, chmod u+s/g+s) and LXD's fuidshift; $SA -> $SB, each from the same pristine tree" \
        "${peers[@]}"
    fi
    rm -rf "$stree" "$SCR/shift-caps.dump" "$SCR/shift-nscap.err"
    ;;
  esac
done
echo "(leave the scratch fs mounted for reuse; remove with: $kit/scratchfs.sh down $SCR)"
