#!/usr/bin/env bash
# make unit-unpriv: run the race-enabled test suite as an unprivileged user
# (style guide 2.4: the suite runs twice in CI, as root and rootless).
#
# Run as root (make test does, after the root suite). It
#   - creates, or reuses, the system user $NSCAP_UNPRIV_USER (nscap-unpriv):
#     no login shell, no home, a group of its own; the user is kept between
#     runs;
#   - gives it one subordinate uid and gid range (65536 ids) in /etc/subuid
#     and /etc/subgid for the run, so helper user namespaces (newuidmap) work.
#     The range is the first block from 700000 on that overlaps neither a
#     line of another user nor the ranges that root tests use as helper maps
#     or hand to testutil.User (100000, 400000-535535, 3000000-3965535). Any
#     earlier line of the user is replaced, and the lines are removed at exit:
#     the files never grow. They are edited under the flock of
#     internal/testutil (UserLockFile), like testutil.User does;
#   - makes sure unprivileged user namespaces are allowed: a sysctl that
#     forbids them (kernel.unprivileged_userns_clone=0,
#     kernel.apparmor_restrict_unprivileged_userns=1, user.max_user_namespaces=0)
#     is relaxed for the run and restored at exit, and `unshare -U` as the
#     user must work;
#   - compiles each package's test binary once, as root (go test -c -race),
#     into a temporary directory under /var/tmp (a disk filesystem with user
#     xattrs: tests that write capabilities need them), mode 0755;
#   - runs the binaries one package at a time as the user (setpriv --reuid
#     --regid --init-groups, no capabilities), in the package's directory
#     when the user can read the checkout, otherwise in a copy of the
#     checkout in the temporary directory (tests read testdata/ and
#     ../../fcaps/testdata relative to the package), with a clean
#     environment: HOME, TMPDIR and NSCAP_TEST_DIR are directories the user
#     owns, NSCAP_TEST_REQUIRE_ROOT is unset, -test.count=1;
#   - removes the temporary directory at exit.
#
# Knobs: NSCAP_UNPRIV_USER (user name), NSCAP_UNPRIV_COPY=1 (always run in a
# copy of the checkout), NSCAP_UNPRIV_V=1 (print every test's output, not
# only that of failing packages), NSCAP_UNPRIV_RUN=REGEXP (-test.run),
# NSCAP_UNPRIV_PKGS="./fcaps ./userns" (packages; default ./...), GO.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
GO=${GO:-go}
user=${NSCAP_UNPRIV_USER:-nscap-unpriv}
subcount=65536
# Ranges (start count) that root tests map or give to testutil.User: the
# unprivileged user's range must stay clear of them even when their lines
# are not in /etc/subuid at the moment.
reserved="100000 65536
400000 135536
3000000 965536"
lock=/run/lock/nscap-test-users.lock # testutil.UserLockFile
[ -d /run/lock ] || lock=/tmp/nscap-test-users.lock

say() { echo "unit-unpriv: $*"; }
die() { echo "unit-unpriv: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "needs root (it creates the test user); as a plain user, make unit already is the unprivileged run"
for t in setpriv useradd newuidmap newgidmap unshare flock setfattr; do
  command -v "$t" >/dev/null || die "$t missing (make deps installs uidmap and attr; setpriv, useradd, flock: util-linux, passwd)"
done

# One run at a time on the machine: a run's exit removes the user's
# subordinate lines, which another run's helpers would still need.
exec 8>>"${lock%/*}/nscap-unpriv.lock"
flock -w 1800 8 || die "another unit-unpriv run holds ${lock%/*}/nscap-unpriv.lock"

work=
sysctl_restore=()
subids_added=
cleanup() {
  local rc=$?
  [ -n "$work" ] && rm -rf "$work"
  [ -n "$subids_added" ] && edit_subids remove
  local kv
  for kv in "${sysctl_restore[@]}"; do
    sysctl -q -w "$kv" >/dev/null || echo "unit-unpriv: could not restore $kv" >&2
  done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# as_user CMD...: run CMD as the user, with no capabilities and an
# environment of PATH only.
as_user() {
  env -i PATH="$PATH" setpriv --reuid="$uid" --regid="$gid" --init-groups --inh-caps=-all "$@"
}

# edit_subids add|remove: drop the user's lines (by name or uid) from
# /etc/subuid and /etc/subgid and, for add, append one line with a free
# range (chosen in /etc/subuid, used for both). Edits rewrite a temporary
# file in /etc and rename it, keeping mode and owner.
edit_subids() {
  local op=$1 f tmp
  exec 9>>"$lock"
  flock -w 300 9 || die "flock $lock: held for 300s by $(cat "$lock")"
  if [ "$op" = add ]; then
    substart=$(
      { echo "$reserved"; for f in /etc/subuid /etc/subgid; do
          [ -f "$f" ] && awk -F: -v n="$user" -v u="$uid" 'NF==3 && $1!=n && $1!=u {print $2, $3}' "$f"
        done; } |
      awk -v want="$subcount" '
        NF==2 { s[NR]=$1+0; c[NR]=$2+0; n=NR }
        END {
          for (start = 700000; start + want <= 4294967295; start += 65536) {
            ok = 1
            for (i in s) if (start < s[i] + c[i] && s[i] < start + want) { ok = 0; break }
            if (ok) { print start; exit }
          }
        }')
    [ -n "$substart" ] || die "no free subordinate id range"
  fi
  for f in /etc/subuid /etc/subgid; do
    [ -f "$f" ] || { [ "$op" = add ] || continue; install -m 0644 /dev/null "$f"; }
    tmp=$(mktemp "$f.nscap-unpriv.XXXXXX")
    chmod --reference="$f" "$tmp"; chown --reference="$f" "$tmp"
    awk -F: -v n="$user" -v u="$uid" '!($1==n || $1==u)' "$f" >"$tmp"
    [ "$op" = add ] && echo "$user:$substart:$subcount" >>"$tmp"
    if cmp -s "$f" "$tmp"; then rm -f "$tmp"; else mv "$tmp" "$f"; fi
  done
  flock -u 9
  exec 9>&-
}

# 1. The user.
if ! id -u "$user" >/dev/null 2>&1; then
  useradd --system -M -U -d /nonexistent -s /usr/sbin/nologin \
    -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 "$user" || die "useradd $user failed"
  say "created the system user $user"
fi
uid=$(id -u "$user")
gid=$(id -g "$user")
[ "$uid" != 0 ] || die "$user has uid 0"

# 2. Its subordinate ranges, for the run only.
subids_added=1
edit_subids add
say "user $user (uid $uid, gid $gid), subordinate uids and gids $substart:$subcount"

# 3. Unprivileged user namespaces.
relax() { # relax KEY BAD GOOD: set KEY to GOOD for the run when it is BAD
  local key=$1 bad=$2 good=$3 f=/proc/sys/${1//.//} cur
  [ -r "$f" ] || return 0
  cur=$(<"$f")
  if [ "$cur" = "$bad" ]; then
    sysctl -q -w "$key=$good" >/dev/null || die "$key=$bad forbids unprivileged user namespaces and cannot be changed"
    sysctl_restore+=("$key=$cur")
    say "$key was $bad: set to $good for the run (restored at exit)"
  fi
}
relax kernel.unprivileged_userns_clone 0 1
relax kernel.apparmor_restrict_unprivileged_userns 1 0
relax user.max_user_namespaces 0 1024
out=$(as_user unshare -U true 2>&1) ||
  die "$user cannot create a user namespace (unshare -U): $out"

# 4. Directories: a disk filesystem with user xattrs, traversable by the
# user and by its helper user namespaces.
for base in /var/tmp "$repo/.testtmp"; do
  mkdir -p "$base"
  work=$(mktemp -d "$base/nscap-unpriv.XXXXXX")
  chmod 0755 "$work"
  touch "$work/.probe"
  if setfattr -n user.nscap-probe -v 1 "$work/.probe" 2>/dev/null &&
    as_user test -x "$work"; then
    rm -f "$work/.probe"
    break
  fi
  rm -rf "$work"; work=
done
[ -n "$work" ] || die "no directory with user xattrs that $user can reach (tried /var/tmp, $repo/.testtmp)"
mkdir -m 0755 "$work/bin" "$work/home" "$work/tmp" "$work/capdir"
chown "$uid:$gid" "$work/home" "$work/tmp" "$work/capdir"

# 5. Test binaries, built once as root.
# shellcheck disable=SC2086
mapfile -t pkgs < <("$GO" list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}} {{.Dir}}{{end}}' ${NSCAP_UNPRIV_PKGS:-./...} | sed '/^$/d')
[ "${#pkgs[@]}" -gt 0 ] || die "no test packages"
module=$("$GO" list -m)
say "building ${#pkgs[@]} test binaries (go test -c -race) in $work/bin"
for p in "${pkgs[@]}"; do
  ip=${p%% *}
  name=${ip#"$module"}; name=${name#/}; name=${name//\//_}; name=${name:-root}
  "$GO" test -c -race -o "$work/bin/$name.test" "$ip"
done
chmod -R a+rX "$work/bin"

# 6. Where the tests run: the checkout when the user can read it, else a copy.
srcroot=$repo
if [ "${NSCAP_UNPRIV_COPY:-}" = 1 ] || ! as_user test -r "$repo/go.mod" -a -x "$repo"; then
  srcroot=$work/src
  mkdir -m 0755 "$srcroot"
  tar -C "$repo" --exclude=./.git --exclude=./.testtmp --exclude='*.test' -cf - . | tar -C "$srcroot" -xf -
  chmod -R a+rX "$srcroot"
  say "$user cannot read $repo (or NSCAP_UNPRIV_COPY=1): running in a copy, $srcroot"
fi

# 7. Run, one package at a time.
args=(-test.count=1 -test.v -test.timeout=20m)
[ -n "${NSCAP_UNPRIV_RUN:-}" ] && args+=("-test.run=$NSCAP_UNPRIV_RUN")
failed=()
for p in "${pkgs[@]}"; do
  ip=${p%% *} dir=${p#* }
  name=${ip#"$module"}; name=${name#/}; name=${name//\//_}; name=${name:-root}
  rel=${dir#"$repo"}
  log=$work/$name.log
  start=$SECONDS
  rc=0
  (
    cd "$srcroot$rel"
    env -i PATH="$PATH" LANG=C.UTF-8 CI="${CI:-}" USER="$user" LOGNAME="$user" \
      HOME="$work/home" TMPDIR="$work/tmp" NSCAP_TEST_DIR="$work/capdir" \
      setpriv --reuid="$uid" --regid="$gid" --init-groups --inh-caps=-all \
      "$work/bin/$name.test" "${args[@]}"
  ) >"$log" 2>&1 || rc=$?
  pass=$(grep -c -- '--- PASS' "$log" || true)
  skip=$(grep -c -- '--- SKIP' "$log" || true)
  fail=$(grep -c -- '--- FAIL' "$log" || true)
  if [ "$rc" = 0 ]; then
    [ "${NSCAP_UNPRIV_V:-}" = 1 ] && cat "$log"
    printf 'ok  \t%s\t%ds\t(as %s: %d passed, %d skipped)\n' "$ip" $((SECONDS - start)) "$user" "$pass" "$skip"
  else
    cat "$log"
    printf 'FAIL\t%s\t%ds\t(as %s: exit %d, %d passed, %d failed, %d skipped)\n' "$ip" $((SECONDS - start)) "$user" "$rc" "$pass" "$fail" "$skip"
    failed+=("$ip")
  fi
  # Helper processes of the tests must be gone with them. A zombie is not
  # one: it runs nothing, and waits for whoever inherited it to reap it
  # (PID 1 of a VM or a container may reap late, or never).
  if left=$(ps -u "$uid" -o pid=,stat=,args= 2>/dev/null | awk '$2 !~ /^Z/') && [ -n "$left" ]; then
    echo "unit-unpriv: processes of $user left after $ip:" >&2
    echo "$left" >&2
    failed+=("$ip (leaked processes)")
    # They are the tests' own (the user is this script's); kill them by pid.
    kill -KILL $(awk '{print $1}' <<<"$left") 2>/dev/null || true
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "unit-unpriv: FAIL as $user: ${failed[*]}" >&2
  exit 1
fi
say "all ${#pkgs[@]} packages pass as $user"
