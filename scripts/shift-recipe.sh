#!/usr/bin/env bash
# shift-recipe.sh FROM TO COUNT ROOTFS: move ROOTFS from host ids FROM..FROM+COUNT-1 to
# TO..TO+COUNT-1 (uids and gids alike) with standard tools only: the shell baseline that
# `make bench` (scripts/bench.sh, BENCH_ONLY=shift) times against `nscap shift`, and
# checks against nscap's result (owners, modes, getcap -r -n, getfacl -R -n).
#
# The recipe, fastest first-hand version we found:
#  1. Before any change, in parallel (the chown loses caps and setuid/setgid bits):
#       getcap -r -n ROOTFS                      caps, with their rootids
#       getfacl -R -P -n --skip-base .           files with ACLs (access or default)
#       find ROOTFS -printf '%U %G %m %y %p\n'   owners, modes, types
#  2. awk maps every id in range (id - FROM + TO; ids outside stay) and writes one list
#     of paths per new owner pair (split every 8192 paths), the setuid and setgid lists,
#     the ACL dump with its ids rewritten (entries and "# owner/# group" lines) and the
#     caps grouped by their new rootid (a revision-3 rootid in range moves; other rootids,
#     and revision-2 caps, which getcap -n prints without a rootid, stay as they are).
#  3. xargs -P NPROC over those lists: chown -h NEWUID:NEWGID (-h: symlinks are lchown'ed).
#  4. setfacl --restore=- with the rewritten dump (after the chown: its owner lines then
#     match and it only writes the ACLs; it re-sets setuid/setgid from "# flags" too).
#  5. setcap -n NEWROOTID CAPS FILE CAPS FILE... per rootid (setcap without -n for the
#     revision-2 caps, which writes revision 2 again).
#  6. chmod u+s / g+s the files that had the bits (the kernel cleared them at step 3;
#     g+s only matters with group-exec: without it the kernel keeps the bit).
#
# Limits: paths with a newline break it (find/getcap print one path per line), and so
# do paths with a space in getcap's output; mktree's trees have neither.
set -euo pipefail
[ $# = 4 ] || { echo "usage: $0 FROM TO COUNT ROOTFS" >&2; exit 2; }
from=$1 to=$2 count=$3 root=$(realpath "$4")
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
P=$(nproc)

getcap -r -n "$root" >"$w/caps" &
(cd "$root" && getfacl -R -P -n --skip-base . >"$w/acl" 2>/dev/null) &
find "$root" -printf '%U %G %m %y %p\n' >"$w/list"
wait

# the id map, in awk: m(id)
map='function m(x) { return (x >= F && x < F + N) ? x - F + T : x }'
awk -v F="$from" -v T="$to" -v N="$count" -v W="$w" "$map"'
{
  p = $0; for (i = 0; i < 4; i++) sub(/^[^ ]* /, "", p)
  k = m($1) ":" m($2); n = c[k]++; f = W "/own." k "." int(n / 8192); print p > f
  if (c[k] % 8192 == 0) close(f)
  if ($4 != "d" && $4 != "l" && length($3) > 3) {
    s = substr($3, 1, length($3) - 3) + 0
    if (s == 4 || s == 5 || s == 6 || s == 7) print p > (W "/suid")
    if (s == 2 || s == 3 || s == 6 || s == 7) print p > (W "/sgid")
  }
}' "$w/list"

awk -v F="$from" -v T="$to" -v N="$count" "$map"'
/^# (owner|group): / { print $1, $2, m($3); next }
/^(default:)?(user|group):[0-9]+:/ {
  n = split($0, a, ":"); k = (a[1] == "default") ? 3 : 2
  a[k] = m(a[k]); s = a[1]; for (i = 2; i <= n; i++) s = s ":" a[i]; print s; next
}
{ print }' "$w/acl" >"$w/acl.new"

# getcap -n: "PATH CAPTEXT... [rootid=N]"; one "CAPTEXT\nPATH\n" pair per line pair
awk -v F="$from" -v T="$to" -v N="$count" -v W="$w" "$map"'
{
  r = "v2"; last = $NF
  if (last ~ /^\[rootid=[0-9]+\]$/) { gsub(/[^0-9]/, "", last); r = m(last + 0); NF-- }
  path = $1; $1 = ""; sub(/^ /, "")
  f = W "/cap." r; print $0 > f; print path > f
}' "$w/caps"

# one list per new owner pair and per 8192 paths, NPROC lists at a time
printf '%s\n' "$w"/own.* | xargs -d '\n' -P "$P" -n 1 sh -c \
  'o=${1##*/own.}; exec xargs -d "\n" -a "$1" chown -h "${o%.*}"' sh
[ -s "$w/acl.new" ] && (cd "$root" && setfacl --restore=- <"$w/acl.new")
for f in "$w"/cap.*; do
  [ -e "$f" ] || continue
  r=${f##*/cap.}
  if [ "$r" = v2 ]; then
    xargs -d '\n' -n 512 -a "$f" setcap
  else
    xargs -d '\n' -n 512 -a "$f" setcap -n "$r"
  fi
done
[ -s "$w/suid" ] && xargs -d '\n' -a "$w/suid" chmod u+s
[ -s "$w/sgid" ] && xargs -d '\n' -a "$w/sgid" chmod g+s
exit 0
