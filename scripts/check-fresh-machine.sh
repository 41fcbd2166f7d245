#!/usr/bin/env bash
# The fresh-root lane: does the README's `make demo` work on a minimal Debian 12 with nothing
# installed by hand? Builds (or reuses today's cached) `mmdebstrap --variant=minbase bookworm`
# root with only make git ca-certificates python3 python3-venv, clones this checkout's HEAD into
# it and runs `make demo` there: in private mount and PID namespaces (so every mount and process
# it made goes away with it), chrooted, with an empty environment apart from PATH, HOME, LANG and
# the machine's pip settings (PIP_* and the files `pip config` names, bound read-only, so pip
# reaches the same package index as everywhere else here). Fails unless the demo prints its
# success line and leaves no network namespace behind; on failure prints the log's last lines.
# Run as root. Uncommitted changes are not part of the run (it clones HEAD).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CYGNET_FRESH_CACHE:-/var/cache/cygnet-fresh-root}
SUCCESS="demo succeeded: Cygnet reached the LAN behind strongSwan through its tunnel"
TAIL_LINES=${CYGNET_FRESH_TAIL:-40}
say() { echo "check-fresh-machine: $*" >&2; }

[ "$(id -u)" = 0 ] || { say "run as root (it builds a Debian root and uses namespaces)"; exit 1; }
for program in mmdebstrap unshare chroot git tar; do
  command -v "$program" >/dev/null || { say "$program missing (bash scripts/setup-debian.sh installs it)"; exit 1; }
done
commit=$(git -C "$REPO" rev-parse HEAD)
[ -z "$(git -C "$REPO" status --porcelain --untracked-files=no)" ] \
  || say "note: uncommitted changes are not tested (the lane clones HEAD $commit)"

# -- the minimal root, cached by date (~30 s, ~100 MB) ---------------------------------------
mkdir -p "$CACHE"
tarball="$CACHE/bookworm-minbase-$(date +%Y%m%d).tar"
(
  flock 9
  if [ ! -s "$tarball" ]; then
    say "building $tarball"
    mmdebstrap --quiet --format=tar --variant=minbase \
      --include=make,git,ca-certificates,python3,python3-venv bookworm "$tarball.part" \
      || { rm -f "$tarball.part"; exit 1; }
    mv "$tarball.part" "$tarball"
    find "$CACHE" -maxdepth 1 -name 'bookworm-minbase-*.tar' ! -path "$tarball" -delete
  fi
) 9>"$CACHE/.lock"

work=$(mktemp -d /var/tmp/cygnet-fresh.XXXXXX)
root="$work/root"
log="$work/make-demo.log"     # copied to $CACHE/last-run.log at the end
cleanup() {
  cp "$log" "$CACHE/last-run.log" 2>/dev/null || true
  # every mount was made in the private namespace, gone with its last process; refuse to
  # delete through a mount that should not exist
  if grep -qF " $work" /proc/self/mountinfo; then say "mounts left under $work; not removing it"; return; fi
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

mkdir -p "$root"
tar --numeric-owner -xpf "$tarball" -C "$root"
mkdir -p "$root/proc" "$root/sys" "$root/dev" "$root/run" "$root/tmp"
git clone -q --no-checkout --no-hardlinks "$(git -C "$REPO" rev-parse --path-format=absolute --git-common-dir)" "$root/root/cygnet"
git -C "$root/root/cygnet" checkout -q --detach "$commit"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# package scripts must not start daemons (charon, NetworkManager, dbus) in CI
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

# -- the machine's pip settings: PIP_* variables and every existing file or directory that
# `pip config` names (its config files, the CA bundle, constraints, local indexes/wheels)
environment=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8)
while IFS= read -r assignment; do environment+=("$assignment"); done < <(env | grep '^PIP_' || true)
pip_paths=()
if python3 -m pip --version >/dev/null 2>&1; then
  while IFS= read -r path; do
    path=${path#file://}; path=${path%/}
    # a local index's pages link to ../../files: bind the index root, not just simple/
    [[ "$path" == */simple ]] && path=${path%/simple}
    if [[ "$path" == /* && -e "$path" ]]; then pip_paths+=("$path"); fi
  done < <({ python3 -m pip config debug 2>/dev/null | sed -n 's/^  \(\/[^,]*\), exists: True$/\1/p'
             python3 -m pip config list 2>/dev/null | sed "s/^[^=]*='\(.*\)'$/\1/" | tr ' ' '\n'
             env | sed -n 's/^PIP_[A-Z_]*=//p' | tr ' ' '\n'; } | sort -u)
fi

inner=$(cat <<'EOF'
set -euo pipefail
root=$1; shift
n=$1; shift
pip_paths=("${@:1:$n}"); shift "$n"
mount --bind "$root" "$root"       # `ip netns exec` remounts / rslave: / must be a mount point
mount -t proc proc "$root/proc"     # this PID namespace's own /proc
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
for path in "${pip_paths[@]}"; do
  target="$root$path"
  if [ -d "$path" ]; then mkdir -p "$target"; else mkdir -p "$(dirname "$target")"; [ -e "$target" ] || touch "$target"; fi
  mount --bind "$path" "$target"
  mount -o remount,bind,ro "$target"
done
chroot "$root" /usr/bin/env -i "$@" /bin/bash -c '
  cd /root/cygnet
  status=0
  make demo || status=$?
  echo "check-fresh-machine: network namespaces left: $(ip netns list 2>/dev/null | wc -l)"
  exit $status'
EOF
)

say "running make demo in a fresh Debian 12 root ($commit, log: $CACHE/last-run.log)"
start=$(date +%s)
status=0
timeout --kill-after=30 "${CYGNET_FRESH_TIMEOUT:-1800}" \
  unshare --mount --propagation private --pid --fork --kill-child \
  bash -c "$inner" inner "$root" "${#pip_paths[@]}" "${pip_paths[@]}" "${environment[@]}" \
  >"$log" 2>&1 || status=$?
elapsed=$(( $(date +%s) - start ))

problem=""
if [ "$status" != 0 ]; then problem="make demo exited with status $status"
elif ! grep -qF "$SUCCESS" "$log"; then problem="the demo's success line is missing"
elif ! grep -q '^check-fresh-machine: network namespaces left: 0$' "$log"; then
  problem="the demo left network namespaces behind"
fi
if [ -n "$problem" ]; then
  say "FAILED after ${elapsed}s: $problem"
  grep -h "install Debian package\|cannot run here\|cannot start" "$log" | head -5 | sed 's/^/  /' >&2 || true
  say "last $TAIL_LINES lines of the log (kept in $CACHE/last-run.log):"
  tail -n "$TAIL_LINES" "$log" >&2
  exit 1
fi
say "passed in ${elapsed}s: $SUCCESS"
