#!/usr/bin/env bash
# make e2e: nscap end to end on real trees, checked by independent oracles
# (GNU tar, bsdtar, getcap, getfattr, getfacl, find, sha256sum, the kernel).
# Needs root; it is not part of make test. It takes a few minutes.
#
# Scenario "rootfs" (the README's use case 2, then use case 1):
#   - debootstraps a minimal Debian (minbase + iputils-ping) from the Debian
#     mirror of apt's own sources, cached as a GNU tar under $NSCAP_E2E_CACHE;
#   - makes sure usr/bin/ping has cap_net_raw=ep (setcap, as iputils-ping's
#     postinst does, when debootstrap left it without) and no setuid bit, and
#     adds files of uid 1000, POSIX ACLs and a user xattr;
#   - shifts it to a container at 0:100000:65536 with nscap restore of a
#     GNU tar of raw host ids (--source-uidmap 0:0:65536);
#   - backs that up namespace-relative (nscap backup), checks the archive with
#     GNU tar, restores it under 0:200000:65536 and compares both trees;
#   - runs ping as uid 1000 in a container (user, mount, pid and net
#     namespaces; ICMP datagram sockets disabled so ping needs a raw socket,
#     i.e. cap_net_raw from the file cap) over the restored tree, with
#     negative and positive controls. The container needs its own network
#     namespace: a raw socket needs CAP_NET_RAW in the user namespace owning
#     the network namespace, and the host's is owned by the initial one.
#     ping_group_range is set in that namespace; the host's stays as it is.
# Scenario "tree" (a debootstrap-sized generated tree): mktree.py plus a copy
# of the host's /usr/lib/<multiarch>, round-tripped byte-exact through
# nscap backup -> GNU tar and bsdtar extraction, GNU tar and bsdtar archives
# -> nscap restore, and nscap backup -> nscap restore.
#
# Everything happens in a scratch directory on a disk filesystem (xattrs and
# security.capability must work: not tmpfs), removed at exit with its mounts.
# Missing Debian packages are installed with apt-get. It prints one PASS or
# FAIL line per check, a summary, and exits 1 when a check failed.
#
# Knobs (environment):
#   NSCAP_E2E_CACHE=/var/cache/nscap-e2e  debootstrap cache (a tar per suite/arch)
#   NSCAP_E2E_REFRESH=1                   debootstrap again, replacing the cache
#   NSCAP_E2E_TMPDIR=/var/tmp             where the scratch directory is made
#   NSCAP_E2E_KEEP=1                      keep the scratch directory
#   NSCAP_E2E_ONLY="rootfs tree"          scenarios to run
#   NSCAP_E2E_SUITE=bookworm              Debian suite to debootstrap
#   NSCAP_E2E_MIRROR=URL                  mirror (default: apt's Debian archive entry)
#   NSCAP_E2E_FILES=20000 NSCAP_E2E_SCALE=1   mktree.py --files / --data-scale
#   NSCAP_E2E_LIBDIR=/usr/lib/$(uname -m)-linux-gnu   host directory copied into the tree
#   NSCAP_E2E_KIT=../shared/bench         the benchmark kit holding mktree.py
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
kit=${NSCAP_E2E_KIT:-${BENCH_KIT:-$repo/../shared/bench}}
CACHE=${NSCAP_E2E_CACHE:-/var/cache/nscap-e2e}
TMPBASE=${NSCAP_E2E_TMPDIR:-/var/tmp}
SUITE=${NSCAP_E2E_SUITE:-bookworm}
ONLY=${NSCAP_E2E_ONLY:-rootfs tree}
FILES=${NSCAP_E2E_FILES:-20000}
SCALE=${NSCAP_E2E_SCALE:-1}
LIBDIR=${NSCAP_E2E_LIBDIR:-/usr/lib/$(uname -m)-linux-gnu}
DEB_PACKAGES="debootstrap libcap2-bin tar libarchive-tools uidmap util-linux attr acl iproute2 python3 coreutils findutils"
ALL_ASPECTS="sums meta xattrs capx caps aclx acls"
MAP100=0:100000:65536
MAP200=0:200000:65536
MAP300=0:300000:65536

t_start=$EPOCHREALTIME
scratch=""
results=() # "PASS|FAIL|NOTE<TAB>seconds<TAB>description"
nfail=0

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
say() { printf 'e2e [%6ss] %s\n' "$(elapsed "$t_start")" "$*"; }
step() { echo; say "== $*"; }
die() { echo "e2e: $*" >&2; exit 2; }

cleanup() {
  local rc=$? p m
  trap - EXIT INT TERM
  set +e
  if [ -n "$scratch" ] && [ -d "$scratch" ]; then
    # a container still running (an interrupted run): its unshare
    if [ -f "$scratch/ct.pid" ]; then
      p=$(cat "$scratch/ct.pid")
      if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q '^unshare --user'; then
        kill -KILL "$p"
      fi
    fi
    # the containers' proc mounts live in their own mount namespaces; anything
    # mounted under the scratch directory in ours is unmounted too
    findmnt -rn -o TARGET | grep -F "$scratch/" | sort -r | while read -r m; do
      umount -l "$m"
    done
    if [ "${NSCAP_E2E_KEEP:-0}" = 1 ]; then
      echo "e2e: kept $scratch"
    else
      echo "e2e: removing $scratch"
      rm -rf --one-file-system "$scratch"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# record STATUS SECONDS DESCRIPTION
record() {
  results+=("$1"$'\t'"$2"$'\t'"$3")
  [ "$1" != FAIL ] || nfail=$((nfail + 1))
  printf '  %-4s [%6ss] %s\n' "$1" "$2" "$3"
}

# check DESCRIPTION COMMAND...: run COMMAND (a function, usually) with
# errexit on, its output in a log; record PASS or FAIL. Sets last_ok.
# Must not be called from a condition (if, &&, ||), which turns errexit off.
ncheck=0
last_ok=1
check() {
  local desc=$1 t0=$EPOCHREALTIME log rc
  shift
  ncheck=$((ncheck + 1))
  log=$scratch/logs/$(printf %03d "$ncheck").log
  set +e
  (set -e; "$@") >"$log" 2>&1
  rc=$?
  set -e
  if [ "$rc" = 0 ]; then
    last_ok=1
    record PASS "$(elapsed "$t0")" "$desc"
    [ ! -s "$log" ] || grep '^>' "$log" | sed 's/^>/         /' || true
  else
    last_ok=0
    record FAIL "$(elapsed "$t0")" "$desc"
    tail -n 40 "$log" | sed 's/^/         | /'
  fi
}
ok() { [ "$last_ok" = 1 ]; }
# info TEXT: a line shown under the check's PASS line (from inside a check)
info() { echo ">$*"; }
note() { record NOTE "0.0" "$*"; }

# ---------------------------------------------------------------- setup

[ "$(id -u)" = 0 ] || die "make e2e needs root (debootstrap, chown, setcap, namespaces)"
command -v go >/dev/null || die "go is missing (it builds nscap from this checkout)"

install_deps() {
  local p missing=""
  for p in $DEB_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
  done
  if [ -z "$missing" ]; then
    say "Debian packages present: $DEB_PACKAGES"
    return
  fi
  say "installing:$missing"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  # shellcheck disable=SC2086 # a list of package names
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq $missing
}

# apt_sources: one line "URI SUITE COMPONENTS SIGNED-BY" per (entry, suite) of
# type deb in apt's sources, both the one-line and the deb822 formats.
apt_sources() {
  local f SL=/etc/apt/sources.list SP=/etc/apt/sources.list.d/
  eval "$(apt-config shell SL Dir::Etc::sourcelist/f SP Dir::Etc::sourceparts/d)"
  for f in "$SL" "$SP"*.list; do
    [ -f "$f" ] || continue
    awk '
      { sub(/#.*/, "") }
      $1 != "deb" { next }
      {
        line = $0; sub(/^[ \t]*deb[ \t]+/, "", line); opts = ""
        if (line ~ /^\[/) { opts = substr(line, 2, index(line, "]") - 2); line = substr(line, index(line, "]") + 1) }
        n = split(line, w, /[ \t]+/); k = 0
        for (i = 1; i <= n; i++) if (w[i] != "") v[++k] = w[i]
        if (k < 3) next
        sb = "-"; m = split(opts, o, /[ \t]+/)
        for (i = 1; i <= m; i++) if (o[i] ~ /^signed-by=/) sb = substr(o[i], 11)
        comps = v[3]; for (i = 4; i <= k; i++) comps = comps "," v[i]
        print v[1], v[2], comps, sb
      }' "$f"
  done
  for f in "$SP"*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush(   i, nu, ns, u, s, c) {
        if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no") {
          c = comps; gsub(/[ \t]+/, ",", c)
          nu = split(uris, u, /[ \t]+/); ns = split(suites, s, /[ \t]+/)
          for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
            if (u[i] != "" && s[j] != "") print u[i], s[j], c, (sb == "" ? "-" : sb)
        }
        types = uris = suites = comps = sb = enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]/ { next }
      {
        key = tolower($1); val = $0; sub(/^[^:]*:[ \t]*/, "", val); sub(/[ \t]+$/, "", val)
        if (key == "types:") types = val
        else if (key == "uris:") uris = val
        else if (key == "suites:") suites = val
        else if (key == "components:") comps = val
        else if (key == "signed-by:") sb = val
        else if (key == "enabled:") enabled = val
      }
      END { flush() }' "$f"
  done
}

# mirror_for SUITE: the Debian main archive entry of apt's sources: main
# component, the suite itself (else any release suite: no -updates,
# -security, -backports), not a security archive. Prints "URI SIGNED-BY".
mirror_for() {
  apt_sources | awk -v want="$1" '
    $3 !~ /(^|,)main(,|$)/ || $1 ~ /security/ { next }
    $2 == want && exact == "" { exact = $1 " " $4 }
    $2 !~ /[-\/]/ && any == "" { any = $1 " " $4 }
    END { if (exact != "") print exact; else if (any != "") print any }'
}

step "0. setup"
install_deps
mkdir -p "$TMPBASE"
scratch=$(mktemp -d "$TMPBASE/nscap-e2e.XXXXXX")
# the container's processes (unmapped host root before they chroot) must be
# able to traverse it
chmod 755 "$scratch"
mkdir -p "$scratch/logs" "$scratch/snap"
snaps=$scratch/snap
fstype=$(stat -f -c %T "$scratch")
case $fstype in
tmpfs | ramfs | overlayfs | overlay) die "$TMPBASE is on $fstype; set NSCAP_E2E_TMPDIR to a directory on a disk filesystem" ;;
esac
touch "$scratch/probe"
if ! { setcap cap_net_raw=ep "$scratch/probe" && setfattr -n user.nscap_e2e -v 1 "$scratch/probe"; }; then
  die "$scratch ($fstype) does not take security.capability or user xattrs; set NSCAP_E2E_TMPDIR"
fi
rm -f "$scratch/probe"
say "scratch directory $scratch ($fstype), cache $CACHE, $(nproc) cores, kernel $(uname -r)"
go build -o "$scratch/nscap" ./cmd/nscap
N=$scratch/nscap
say "built $N ($(git -C "$repo" describe --always --dirty 2>/dev/null || echo "?"))"

# ---------------------------------------------------------------- oracles

# tree_sums DIR: "sha256  ./path" of every regular file, sorted by path
tree_sums() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum); }

# tree_meta DIR [SHIFT]: one line per entry, sorted: path, type, uid, gid
# (SHIFT subtracted), mode (with setuid/setgid/sticky), links, size (files and
# symlinks), the first path of the same inode (hard links) and the symlink target
tree_meta() {
  (cd "$1" && find . -printf '%P\t%y\t%U\t%G\t%m\t%n\t%s\t%i\t%l\n') | LC_ALL=C sort -t $'\t' -k1,1 |
    awk -F'\t' -v OFS='\t' -v sh="${2:-0}" '{
      size = ($2 == "f" || $2 == "l") ? $7 : "-"
      grp = "-"
      if ($2 == "f" && $6 > 1) { if (!($8 in first)) first[$8] = $1; grp = first[$8] }
      print $1, $2, $3 - sh, $4 - sh, $5, $6, size, grp, $9
    }'
}

# tree_xattrs DIR: "path<TAB>name=0xVALUE" of every xattr but
# security.capability (symlinks not followed), sorted
tree_xattrs() {
  (cd "$1" && getfattr -R -P -h -d -m - -e hex .) |
    awk '/^# file: / { f = substr($0, 9); next } NF { print f "\t" $0 }' | LC_ALL=C sort
}

# tree_caps DIR [SHIFT]: getcap -r -n, sorted, rootids with SHIFT subtracted
tree_caps() {
  (cd "$1" && getcap -r -n .) | awk -v sh="${2:-0}" '{
      if (sh != 0 && match($0, /\[rootid=[0-9]+\]$/)) {
        id = substr($0, RSTART + 8, RLENGTH - 9)
        $0 = substr($0, 1, RSTART - 1) "[rootid=" (id - sh) "]"
      }
      print }' | LC_ALL=C sort
}

# tree_acls DIR [SHIFT]: getfacl -R -s -n (files with extended ACLs), ids
# of named entries with SHIFT subtracted, owner lines left out (tree_meta)
tree_acls() {
  (cd "$1" && getfacl -R -P -s -n .) | awk -v sh="${2:-0}" '
    /^# file: / { f = substr($0, 9); next }
    /^#/ || !NF { next }
    {
      n = split($0, e, ":")
      if (n == 3 && e[2] != "" && (e[1] == "user" || e[1] == "group")) e[2] -= sh
      if (n == 4 && e[3] != "" && (e[2] == "user" || e[2] == "group")) e[3] -= sh
      line = e[1]; for (i = 2; i <= n; i++) line = line ":" e[i]
      print f "\t" line
    }' | LC_ALL=C sort
}

# snap DIR NAME [SHIFT]: the oracles' view of DIR in $snaps/NAME.*: sums,
# meta (owners - SHIFT), caps (getcap, rootids - SHIFT), acls (getfacl, ids
# - SHIFT), and the raw xattrs: capx (security.capability: revision and
# rootid bytes), aclx (system.posix_acl_*), xattrs (all others)
snap() {
  local dir=$1 out=$snaps/$2 sh=${3:-0}
  tree_sums "$dir" >"$out.sums"
  tree_meta "$dir" "$sh" >"$out.meta"
  tree_xattrs "$dir" >"$out.all"
  grep -P '\tsecurity\.capability=' "$out.all" >"$out.capx" || true
  grep -P '\tsystem\.posix_acl_' "$out.all" >"$out.aclx" || true
  grep -vP '\t(security\.capability|system\.posix_acl_)' "$out.all" >"$out.xattrs" || true
  rm -f "$out.all"
  tree_caps "$dir" "$sh" >"$out.caps"
  tree_acls "$dir" "$sh" >"$out.acls"
}

# cap_is FILE TEXT: getcap -n FILE prints "FILE TEXT"
cap_is() {
  local got
  got=$(getcap -n "$1")
  echo "getcap -n: $got"
  [ "$got" = "$1 $2" ]
}

# same A B [ASPECTS]: compare two snapshots; a diff excerpt per differing aspect
same() {
  local a=$snaps/$1 b=$snaps/$2 k bad=0
  for k in ${3:-$ALL_ASPECTS}; do
    if ! cmp -s "$a.$k" "$b.$k"; then
      echo "$k differ (< $1, > $2):"
      { diff "$a.$k" "$b.$k" || true; } | head -n 16
      bad=1
    fi
  done
  info "compared ($1 vs $2): $(wc -l <"$a.sums") regular files by sha256, $(wc -l <"$a.meta") entries," \
    "$(wc -l <"$a.xattrs") other xattrs, $(wc -l <"$a.caps") caps, $(grep -cE ':[0-9]+:' "$a.acls" || true) named ACL entries [${3:-$ALL_ASPECTS}]"
  return "$bad"
}

# restore_into DEST NSCAP-RESTORE-ARGS... ARCHIVE: nscap restore into DEST,
# which does not exist yet (restore creates it); should it refuse a missing
# DEST, DEST is made and the restore run again, and a note says so.
restore_into() {
  local dest=$1
  shift
  [ ! -e "$dest" ] || { echo "$dest exists"; return 1; }
  if "$N" restore --no-progress "$@" "$dest"; then
    return 0
  fi
  if [ ! -d "$dest" ]; then
    echo "NOTE: nscap restore refused the missing DEST $dest; made it and ran again" | tee -a "$scratch/notes"
    mkdir "$dest"
    "$N" restore --no-progress "$@" "$dest"
    return
  fi
  return 1
}

# ---------------------------------------------------------------- containers

# run_ct ROOT OUTER CMD...: run CMD as uid/gid 1000 of a container whose uid
# and gid maps are 0:OUTER:65536: new user, mount, pid and network
# namespaces, lo up, ICMP datagram sockets disabled (ping_group_range "1 0",
# per network namespace: the host's value is not touched), proc mounted on
# ROOT/proc, chrooted into ROOT, no capabilities left. The maps are written
# from here, as a root runtime does (newuidmap would need /etc/subuid lines
# for root). Prints CMD's output; returns its status.
# shellcheck disable=SC2016 # expanded by the container's bash
ct_inner='
set -euo pipefail
root=$1; shift
if [ "$(id -u)" != 0 ]; then
  # stage 1, unmapped: wait for the maps, then become the container root
  for _ in $(seq 400); do
    [ -n "$(cat /proc/self/uid_map)" ] && [ -n "$(cat /proc/self/gid_map)" ] && break
    sleep 0.025
  done
  [ -n "$(cat /proc/self/gid_map)" ] || { echo "container: no id maps" >&2; exit 97; }
  exec setpriv --reuid 0 --regid 0 --clear-groups -- bash -c "$NSCAP_E2E_CT" container "$root" "$@"
fi
# stage 2, container root (host binaries until the chroot)
ip link set lo up
echo "1 0" >/proc/sys/net/ipv4/ping_group_range
mount -t proc proc "$root/proc"
exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/ LC_ALL=C \
  setpriv --reuid 1000 --regid 1000 --clear-groups --inh-caps=-all -- "$@"
'
run_ct() {
  local root=$1 outer=$2 pid self i rc=0
  shift 2
  NSCAP_E2E_CT=$ct_inner unshare --user --mount --pid --net --fork --kill-child --keep-caps -- \
    bash -c "$ct_inner" container "$root" "$@" &
  pid=$!
  echo "$pid" >"$scratch/ct.pid"
  self=$(readlink /proc/self/ns/user)
  for i in $(seq 400); do
    [ "$(readlink "/proc/$pid/ns/user" 2>/dev/null || echo gone)" = "$self" ] || break
    sleep 0.01
  done
  [ "$i" -lt 400 ] || { echo "container: unshare made no user namespace"; kill -KILL "$pid"; }
  if [ -d "/proc/$pid" ]; then
    echo "0 $outer 65536" >"/proc/$pid/uid_map"
    echo "0 $outer 65536" >"/proc/$pid/gid_map"
  fi
  wait "$pid" || rc=$?
  rm -f "$scratch/ct.pid"
  return "$rc"
}

# ---------------------------------------------------------------- scenario rootfs

scenario_rootfs() {
  local arch mirror="" keyring=- cachetar deb=$scratch/debootstrap r100=$scratch/rootfs100k r200=$scratch/rootfs200k
  arch=$(dpkg --print-architecture)
  cachetar=$CACHE/debootstrap-$SUITE-$arch-minbase-iputils-ping.tar

  step "1. debootstrap $SUITE ($arch, minbase, iputils-ping)"
  if [ -n "${NSCAP_E2E_MIRROR:-}" ]; then
    mirror=$NSCAP_E2E_MIRROR keyring=-
  else
    read -r mirror keyring < <(mirror_for "$SUITE") || true
  fi
  get_tree() {
    if [ -f "$cachetar" ] && [ "${NSCAP_E2E_REFRESH:-0}" != 1 ]; then
      info "from the cache $cachetar ($(cat "$cachetar.info" 2>/dev/null || echo "?"))"
      mkdir "$deb"
      tar --xattrs --xattrs-include='*' --numeric-owner -xpf "$cachetar" -C "$deb"
      return
    fi
    [ -n "$mirror" ] || { echo "no Debian archive entry with component main in apt's sources; set NSCAP_E2E_MIRROR"; return 1; }
    local opts=(--variant=minbase --include=iputils-ping "--arch=$arch")
    [ "$keyring" = - ] || [ ! -f "$keyring" ] || opts+=("--keyring=$keyring")
    # apt's proxy, if it has one and the environment does not
    local E2E_PROXY=""
    eval "$(apt-config shell E2E_PROXY Acquire::http::Proxy)"
    if [ -n "$E2E_PROXY" ] && [ -z "${http_proxy:-}" ]; then export http_proxy=$E2E_PROXY; fi
    echo "debootstrap ${opts[*]} $SUITE $deb $mirror"
    debootstrap "${opts[@]}" "$SUITE" "$deb" "$mirror" >"$scratch/debootstrap.log" 2>&1 ||
      { tail -n 30 "$scratch/debootstrap.log"; return 1; }
    info "debootstrapped from $mirror (the Debian archive entry of apt's sources)"
    mkdir -p "$CACHE"
    tar --xattrs --xattrs-include='*' --numeric-owner -cf "$cachetar.tmp$$" -C "$deb" .
    echo "$SUITE $arch from $mirror on $(date -u +%Y-%m-%dT%H:%MZ)" >"$cachetar.info"
    mv "$cachetar.tmp$$" "$cachetar"
    info "cached as $cachetar"
  }
  check "rootfs: $SUITE minbase with iputils-ping debootstrapped (or from the cache)" get_tree
  ok || return 0
  say "tree: $(find "$deb" | wc -l) entries, $(du -sm "$deb" | cut -f1) MB"

  step "2. usr/bin/ping has cap_net_raw=ep"
  ping_cap() {
    local p=$deb/usr/bin/ping
    echo "getcap: $(getcap "$p")"
    if [ "$(getcap "$p")" = "$p cap_net_raw=ep" ]; then
      info "debootstrap (iputils-ping's postinst) left it with cap_net_raw=ep"
    else
      # what iputils-ping's postinst does when setcap is there
      setcap cap_net_raw+ep "$p"
      info "debootstrap left it without; set with setcap cap_net_raw+ep as iputils-ping's postinst does"
    fi
    chmod u-s "$p"
    [ "$(getcap "$p")" = "$p cap_net_raw=ep" ]
    [ "$(stat -c %a "$p")" = 755 ]
    [ "$(stat -c %u:%g "$p")" = 0:0 ]
    info "$(getcap -n "$p" | sed "s|$deb/||"), mode $(stat -c %a "$p") (no setuid bit), owner 0:0"
  }
  check "rootfs: debootstrapped usr/bin/ping has cap_net_raw=ep, mode 0755, owner 0:0" ping_cap
  ok || return 0
  extras() {
    # what a bare debootstrap lacks and a shift must translate too: files of
    # a non-root user, named ACL entries, a default ACL, a user xattr
    mkdir -p "$deb/home/e2e/shared"
    echo "nscap e2e" >"$deb/home/e2e/notes"
    chown -R 1000:1000 "$deb/home/e2e"
    chmod 0750 "$deb/home/e2e"
    setfacl -m u:1001:r-x,g:100:rw- "$deb/home/e2e/notes"
    setfacl -d -m u:1001:rwx,g:50:r-x "$deb/home/e2e/shared"
    setfattr -n user.nscap-e2e -v 0x00ff7f80 "$deb/home/e2e/notes"
    getfacl -R -s -n "$deb/home/e2e" | sed "s|$deb/||"
    info "home/e2e owned by 1000:1000, ACL entries user:1001 group:100 (default: user:1001 group:50), xattr user.nscap-e2e"
  }
  check "rootfs: added home/e2e (owner 1000, named and default POSIX ACLs, a user xattr)" extras
  snap "$deb" deb

  step "3. shift the owners to 100000: GNU tar of the tree -> nscap restore"
  shift100() {
    tar --xattrs --xattrs-include='*' --numeric-owner -cf "$scratch/host.tar" -C "$deb" .
    # GNU tar of raw host ids: the host is the source container (identity map)
    restore_into "$r100" --source-uidmap 0:0:65536 --uidmap "$MAP100" "$scratch/host.tar"
  }
  check "rootfs: nscap restore --source-uidmap 0:0:65536 --uidmap $MAP100 host.tar rootfs100k (DEST made by restore)" shift100
  ok || return 0
  check "rootfs: nscap verify --source-uidmap 0:0:65536 --uidmap $MAP100 host.tar rootfs100k: no difference" \
    "$N" verify --no-progress --source-uidmap 0:0:65536 --uidmap "$MAP100" "$scratch/host.tar" "$r100"
  check "rootfs: oracle getcap -n rootfs100k/usr/bin/ping: cap_net_raw=ep [rootid=100000]" \
    cap_is "$r100/usr/bin/ping" "cap_net_raw=ep [rootid=100000]"
  owners100() {
    local low
    snap "$r100" r100-rel 100000
    low=$(find "$r100" -printf '%U\n%G\n' | sort -nu | awk 'NR == 1')
    info "lowest owner id in rootfs100k (find -printf %U %G): $low"
    [ "$low" -ge 100000 ]
    same deb r100-rel "sums meta xattrs acls"
  }
  check "rootfs: oracle find, getfacl: owners of rootfs100k >= 100000, = the debootstrapped tree's + 100000 (ACL ids too); contents, modes, links equal" owners100

  step "4. nscap backup --uidmap $MAP100 rootfs100k, checked with GNU tar"
  check "rootfs: nscap backup --uidmap $MAP100 -o ct.tar rootfs100k" \
    "$N" backup --no-progress --uidmap "$MAP100" -o "$scratch/ct.tar" "$r100"
  ok || return 0
  listing() {
    tar --numeric-owner -tvf "$scratch/ct.tar" >"$scratch/ct.list"
    info "tar -tvf ct.tar: $(wc -l <"$scratch/ct.list") members, owners $(awk '{ print $2 }' "$scratch/ct.list" | sort -u | tr '\n' ' ')"
    awk '{ split($2, o, "/"); if (o[1] >= 65536 || o[2] >= 65536) { print "not namespace-relative:", $0; bad = 1 } } END { exit bad }' "$scratch/ct.list"
    grep -E '^-rwxr-xr-x 0/0 .* \./usr/bin/ping$' "$scratch/ct.list"
  }
  check "rootfs: GNU tar -tvf ct.tar lists namespace-relative numeric owners (0.., usr/bin/ping 0/0)" listing
  gnu_extract_ct() {
    mkdir "$scratch/ct-gnutar"
    tar --xattrs --xattrs-include='*' --numeric-owner -xpf "$scratch/ct.tar" -C "$scratch/ct-gnutar"
    snap "$scratch/ct-gnutar" ct-gnutar
    [ -f "$snaps/r100-rel.sums" ] || snap "$r100" r100-rel 100000
    same r100-rel ct-gnutar "sums meta xattrs acls"
    # the cap of the container root is stored as revision 2: no rootid
    grep -qxF './usr/bin/ping cap_net_raw=ep' "$snaps/ct-gnutar.caps" || { cat "$snaps/ct-gnutar.caps"; return 1; }
    info "usr/bin/ping's cap in the archive, as GNU tar extracts it: $(cat "$snaps/ct-gnutar.caps") (revision 2: the container root)"
    rm -rf "$scratch/ct-gnutar"
  }
  check "rootfs: GNU tar -xpf --numeric-owner ct.tar = rootfs100k: sha256 of every file, owners and ACL ids - 100000, modes, links, xattrs" gnu_extract_ct

  step "5. nscap restore --uidmap $MAP200 ct.tar rootfs200k"
  check "rootfs: nscap restore --uidmap $MAP200 ct.tar rootfs200k (DEST made by restore)" \
    restore_into "$r200" --uidmap "$MAP200" "$scratch/ct.tar"
  ok || return 0
  check "rootfs: nscap verify --uidmap $MAP200 ct.tar rootfs200k: no difference" \
    "$N" verify --no-progress --uidmap "$MAP200" "$scratch/ct.tar" "$r200"
  cmp200() {
    snap "$r200" r200-as-r100 100000
    snap "$r100" r100-abs
    same r100-abs r200-as-r100 "sums meta xattrs caps acls"
  }
  check "rootfs: rootfs200k = rootfs100k: sha256 of every file; owners, ACL ids, cap rootids + 100000; modes, links, symlinks, xattrs" cmp200
  check "rootfs: oracle getcap -n rootfs200k/usr/bin/ping: cap_net_raw=ep [rootid=200000]" \
    cap_is "$r200/usr/bin/ping" "cap_net_raw=ep [rootid=200000]"

  step "6. ping as uid 1000 in a container at $MAP200 over rootfs200k"
  ct_nocaps() {
    local out
    out=$(run_ct "$r200" 200000 grep -E '^(Uid|Gid|Groups|CapPrm|CapEff|CapAmb)' /proc/self/status)
    echo "$out"
    grep -qE '^Uid:\s+1000\s+1000\s+1000\s+1000$' <<<"$out"
    grep -qE '^CapPrm:\s+0+$' <<<"$out"
    grep -qE '^CapEff:\s+0+$' <<<"$out"
    grep -qE '^CapAmb:\s+0+$' <<<"$out"
    info "$(tr '\n\t' '  ' <<<"$out" | tr -s ' ')"
  }
  check "container: uid 1000 over rootfs200k at $MAP200 runs with no capabilities" ct_nocaps
  ct_ping() {
    local out
    out=$(run_ct "$r200" 200000 ping -v -c1 -W5 127.0.0.1 2>&1)
    echo "$out"
    grep -q 'socktype: SOCK_RAW' <<<"$out"
    grep -q ' 1 received' <<<"$out"
    info "$(grep -E 'socktype|received' <<<"$out" | tr '\n' ' ')"
  }
  check "container: ping -c1 127.0.0.1 as uid 1000 over a raw socket (ping_group_range 1 0): 1 received" ct_ping
  ct_ping_wrong_root() {
    local out rc=0
    out=$(run_ct "$r100" 200000 ping -c1 -W5 127.0.0.1 2>&1) || rc=$?
    echo "$out"
    [ "$rc" != 0 ]
    grep -q 'Operation not permitted' <<<"$out"
    info "exit $rc: $(grep 'Operation not permitted' <<<"$out" | head -n 1)"
  }
  check "container (negative control): rootfs100k (rootid 100000) at $MAP200: ping fails, Operation not permitted" ct_ping_wrong_root
  ct_ping_own_root() {
    local out
    out=$(run_ct "$r100" 100000 ping -c1 -W5 127.0.0.1)
    echo "$out"
    grep -q ' 1 received' <<<"$out"
  }
  check "container (positive control): rootfs100k at its own map $MAP100: ping works, 1 received" ct_ping_own_root

  step "6b. nscap shift rootfs100k in place to $MAP300, ping there, and back"
  check "rootfs: nscap shift --from $MAP100 --to $MAP300 rootfs100k" \
    "$N" shift --no-progress --from "$MAP100" --to "$MAP300" "$r100"
  ok || return 0
  cmp300() {
    snap "$r100" r300-as-r100 200000
    same r100-abs r300-as-r100 "sums meta xattrs caps acls"
  }
  check "rootfs: shifted rootfs = rootfs100k: sha256 of every file; owners, ACL ids, cap rootids + 200000; modes (setuid bits), links, symlinks, xattrs" cmp300
  check "rootfs: oracle getcap -n usr/bin/ping after the shift: cap_net_raw=ep [rootid=300000]" \
    cap_is "$r100/usr/bin/ping" "cap_net_raw=ep [rootid=300000]"
  ct_ping_shifted() {
    local out
    out=$(run_ct "$r100" 300000 ping -v -c1 -W5 127.0.0.1 2>&1)
    echo "$out"
    grep -q 'socktype: SOCK_RAW' <<<"$out"
    grep -q ' 1 received' <<<"$out"
    info "$(grep -E 'socktype|received' <<<"$out" | tr '\n' ' ')"
  }
  check "container: ping -c1 as uid 1000 over the shifted rootfs at $MAP300 (raw socket, ping_group_range 1 0): 1 received" ct_ping_shifted
  check "rootfs: nscap shift --from $MAP300 --to $MAP100 (the reverse shift)" \
    "$N" shift --no-progress --from "$MAP300" --to "$MAP100" "$r100"
  back100() {
    snap "$r100" r100-back
    same r100-abs r100-back
  }
  check "rootfs: shifted back = rootfs100k before the shift, every aspect (raw capability and ACL xattrs included)" back100
}

# ---------------------------------------------------------------- scenario tree

scenario_tree() {
  local src=$scratch/src
  step "7. a debootstrap-sized tree: mktree.py --files $FILES --data-scale $SCALE + a copy of $LIBDIR"
  make_src() {
    [ -f "$kit/mktree.py" ] || { echo "$kit/mktree.py not found: set NSCAP_E2E_KIT to the benchmark kit"; return 1; }
    [ -d "$LIBDIR" ] || { echo "$LIBDIR not found: set NSCAP_E2E_LIBDIR"; return 1; }
    python3 "$kit/mktree.py" --files "$FILES" --data-scale "$SCALE" --out "$src"
    mkdir -p "$src/host/usr/lib"
    cp -a "$LIBDIR" "$src/host/usr/lib/"
    # xattrs and POSIX ACLs, which the generated tree lacks: on every 997th
    # regular file and every 97th directory
    (cd "$src" && find . -type f | LC_ALL=C sort | awk 'NR % 997 == 1') | while read -r f; do
      setfattr -n user.nscap-e2e -v "0x00ff$(printf %s "$f" | sha256sum | cut -c1-16)" "$src/$f"
      setfattr -n trusted.nscap-e2e -v "$f" "$src/$f"
      setfacl -m u:100033:r-x,g:100042:rw- "$src/$f"
    done
    (cd "$src" && find . -mindepth 1 -type d | LC_ALL=C sort | awk 'NR % 97 == 1') | while read -r d; do
      setfacl -m u:100033:rwx "$src/$d"
      setfacl -d -m u:101000:rwx,g:100042:r-x "$src/$d"
    done
    snap "$src" src
    [ -s "$snaps/src.caps" ]
    info "$(wc -l <"$snaps/src.meta") entries, $(du -sm "$src" | cut -f1) MB, $(wc -l <"$snaps/src.sums") regular files," \
      "$(wc -l <"$snaps/src.caps") caps ($(grep -c 'rootid=' "$snaps/src.caps" || true) revision 3), $(wc -l <"$snaps/src.xattrs") other xattrs," \
      "$(wc -l <"$snaps/src.aclx") ACLs"
  }
  check "tree: source made (mktree.py, cp -a $LIBDIR, xattrs and ACLs added)" make_src
  ok || return 0

  # roundtrip NAME: snapshot $scratch/NAME, compare with the source, remove it
  roundtrip_cmp() {
    snap "$scratch/$1" "$1"
    same src "$1"
    rm -rf "${scratch:?}/$1"
  }

  step "8. (a) nscap backup -> GNU tar and bsdtar extraction"
  check "tree: nscap backup --verify -o nscap.tar src (no map: an identity backup, read back and compared)" \
    "$N" backup --no-progress --verify -o "$scratch/nscap.tar" "$src"
  if ok; then
    a_gnu() {
      mkdir "$scratch/a-gnutar"
      tar --xattrs --xattrs-include='*' --numeric-owner -xpf "$scratch/nscap.tar" -C "$scratch/a-gnutar"
      roundtrip_cmp a-gnutar
    }
    check "tree (a): nscap.tar extracted by GNU tar = source (sha256, owners, modes, links, symlinks, xattrs, ACLs, caps)" a_gnu
    a_bsd() {
      mkdir "$scratch/a-bsdtar"
      bsdtar -xpf "$scratch/nscap.tar" --numeric-owner --xattrs -C "$scratch/a-bsdtar"
      # bsdtar restores ACLs from the SCHILY.acl.* records only
      roundtrip_cmp a-bsdtar
    }
    check "tree (a): nscap.tar extracted by bsdtar = source (sha256, owners, modes, links, symlinks, xattrs, ACLs, caps)" a_bsd
  fi

  # The tree has trusted.* xattrs, which restore (as GNU tar) leaves out
  # unless asked: --xattrs-include '*' restores, and verifies, every one.
  step "9. (b) GNU tar and bsdtar archives -> nscap restore"
  b_gnu() {
    tar --xattrs --xattrs-include='*' --numeric-owner -cf "$scratch/gnu.tar" -C "$src" .
    restore_into "$scratch/b-gnutar" --xattrs-include '*' "$scratch/gnu.tar"
    "$N" verify --no-progress --xattrs-include '*' "$scratch/gnu.tar" "$scratch/b-gnutar"
    rm -f "$scratch/gnu.tar"
    roundtrip_cmp b-gnutar
  }
  check "tree (b): GNU tar --xattrs archive -> nscap restore (and verify) = source" b_gnu
  b_bsd() {
    bsdtar --format pax --xattrs -cf "$scratch/bsd.tar" -C "$src" .
    restore_into "$scratch/b-bsdtar" --xattrs-include '*' "$scratch/bsd.tar"
    "$N" verify --no-progress --xattrs-include '*' "$scratch/bsd.tar" "$scratch/b-bsdtar"
    rm -f "$scratch/bsd.tar"
    roundtrip_cmp b-bsdtar
  }
  check "tree (b): bsdtar --xattrs archive -> nscap restore (and verify) = source" b_bsd

  step "10. (c) nscap backup -> nscap restore"
  if [ -f "$scratch/nscap.tar" ]; then
    c_nscap() {
      restore_into "$scratch/c-nscap" --xattrs-include '*' "$scratch/nscap.tar"
      "$N" verify --no-progress --xattrs-include '*' "$scratch/nscap.tar" "$scratch/c-nscap"
      roundtrip_cmp c-nscap
    }
    check "tree (c): nscap.tar -> nscap restore (and verify) = source" c_nscap
  else
    record FAIL 0.0 "tree (c): no nscap.tar (the backup failed)"
  fi
}

for s in $ONLY; do
  case $s in
  rootfs) scenario_rootfs ;;
  tree) scenario_tree ;;
  *) die "unknown scenario $s (NSCAP_E2E_ONLY: rootfs tree)" ;;
  esac
done

if [ -s "$scratch/notes" ]; then
  while read -r line; do note "${line#NOTE: }"; done <"$scratch/notes"
fi
echo
echo "== nscap e2e summary ($(elapsed "$t_start") s, $(nproc) cores, kernel $(uname -r))"
for r in "${results[@]}"; do
  IFS=$'\t' read -r st secs desc <<<"$r"
  printf '%-4s [%6ss] %s\n' "$st" "$secs" "$desc"
done
npass=$(printf '%s\n' "${results[@]}" | grep -c '^PASS' || true)
echo "$npass passed, $nfail failed"
[ "$nfail" = 0 ] || exit 1
