#!/usr/bin/env bash
# check-fresh.sh - the README's promise, proven: on a clean Debian 12 root with
# only what the README assumes (make, git, Python 3.11, Go), a clone of this
# repository passes `make check` and then `make demo` as its very first commands.
#
#   make check-fresh                 (as root; ~25-35 min on 2 cores)
#   FRESH_ROOT=/var/tmp/x KEEP=1 tests/fresh/check-fresh.sh   keep the root afterwards
#   FRESH_TARGETS="check" ...        run other targets in the root (default: check demo)
#
# What the root gets from this machine, and why:
#   - debootstrap --variant=minbase bookworm, from the machine's Debian mirror
#     (apt sources as configured here), plus make, git, python3, ca-certificates:
#     the README's assumptions. Nothing else: every -dev package, the Salt venvs,
#     FerretDB, Prometheus come from the repository's own `make deps`.
#   - Go: /usr/local/go bound read-only ("Go present", as on our machines).
#   - The machine's network setup, which is not ours to install: its extra CA
#     certificates (/usr/local/share/ca-certificates), its apt.conf.d snippets,
#     and the environment variables that point tools at the CA bundle.
# Everything mounted is unmounted at exit, netns mounts under /run/netns too,
# and every process still running inside the root is killed first.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
ROOT=${FRESH_ROOT:-/var/tmp/autodeploy-fresh}
TARGETS=${FRESH_TARGETS:-check demo}
SUITE=bookworm
LOG=${FRESH_LOG:-$REPO/build/check-fresh.log}
MIRROR=$(awk '/^URIs:/ && $2 ~ /debian$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}

[ "$(id -u)" = 0 ] || { echo "check-fresh: needs root (debootstrap, chroot, mounts)"; exit 2; }
[ -x /usr/local/go/bin/go ] || { echo "check-fresh: Go is expected in /usr/local/go (README)"; exit 2; }
command -v debootstrap >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
mkdir -p "$(dirname "$LOG")"

stamp() { date +%s; }
say() { printf '[check-fresh %s] %s\n' "$(date +%T)" "$*"; }

kill_inside() {
  local p r
  for p in /proc/[0-9]*; do
    r=$(readlink "$p/root" 2>/dev/null) || continue
    case "$r" in "$ROOT"|"$ROOT"/*) kill -9 "${p#/proc/}" 2>/dev/null || true ;; esac
  done
}

# Every mount point under the root, innermost first (findmnt -R on a path
# that is not itself a mount point lists nothing, so filter the whole table).
mounts_under() { findmnt -n -l -o TARGET | awk -v r="$ROOT" '$0 == r || index($0, r "/") == 1' | sort -ru; }

unmount_all() {
  local m try
  for try in 1 2 3 4 5; do
    [ -z "$(mounts_under)" ] && return 0
    kill_inside
    mounts_under | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    sleep 1
  done
  [ -z "$(mounts_under)" ]
}

teardown() {
  local rc=$?
  say "tearing down ($ROOT)"
  if ! unmount_all; then
    say "ERROR: mounts left under $ROOT (not removing it):"; mounts_under; exit 1
  fi
  [ -z "${KEEP:-}" ] && rm -rf --one-file-system "$ROOT"
  exit $rc
}

if [ -n "$(mounts_under)" ]; then
  say "an earlier run left mounts under $ROOT: unmounting"
  unmount_all || { say "ERROR: cannot unmount:"; mounts_under; exit 1; }
fi
rm -rf --one-file-system "$ROOT"
trap teardown EXIT

t0=$(stamp)
say "debootstrap --variant=minbase $SUITE from $MIRROR"
debootstrap --variant=minbase --include=make,git,python3,ca-certificates \
  "$SUITE" "$ROOT" "$MIRROR" > "$LOG.debootstrap" 2>&1 \
  || { tail -20 "$LOG.debootstrap"; exit 1; }
t1=$(stamp)

# The machine's network setup (see the header).
cp -a /etc/apt/sources.list.d/. "$ROOT/etc/apt/sources.list.d/" 2>/dev/null || true
if [ -s /etc/apt/sources.list ]; then cp /etc/apt/sources.list "$ROOT/etc/apt/sources.list"
else rm -f "$ROOT/etc/apt/sources.list"; fi   # debootstrap's own would list the mirror twice
cp -a /etc/apt/apt.conf.d/. "$ROOT/etc/apt/apt.conf.d/"
cp -a /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/" 2>/dev/null || true
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
chroot "$ROOT" update-ca-certificates > /dev/null 2>&1

# The root a mount point of its own, as / is on a machine: `ip netns exec`
# makes / a slave mount (it fails on a plain directory), and Salt's diskusage
# beacon reports only mount points.
mount --bind "$ROOT" "$ROOT"
mount -t proc proc "$ROOT/proc"
mount -t sysfs sys "$ROOT/sys"
mount --rbind /dev "$ROOT/dev"; mount --make-rslave "$ROOT/dev"
mount -t tmpfs tmpfs "$ROOT/run"
mount -t tmpfs tmpfs "$ROOT/tmp"
mkdir -p "$ROOT/usr/local/go"
mount --bind /usr/local/go "$ROOT/usr/local/go"; mount -o remount,bind,ro "$ROOT/usr/local/go"

say "cloning $(git -C "$REPO" rev-parse --short HEAD) into the root"
git clone -q "file://$REPO" "$ROOT/root/autodeploy"
git -C "$ROOT/root/autodeploy" checkout -q "$(git -C "$REPO" rev-parse HEAD)"

ENV=(env -i HOME=/root LANG=C.UTF-8 TERM=dumb
     PATH=/usr/local/go/bin:/root/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
     SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt
     REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt CURL_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
     GOFLAGS=-buildvcs=false)
declare -A took
rc=0
for t in $TARGETS; do
  say "make $t (first command in the root; log: $LOG.$t)"
  s=$(stamp)
  if chroot "$ROOT" "${ENV[@]}" bash -c "cd /root/autodeploy && make $t" > "$LOG.$t" 2>&1; then
    took[$t]="passed in $(( $(stamp) - s )) s"
  else
    rc=1; took[$t]="FAILED after $(( $(stamp) - s )) s"
    tail -40 "$LOG.$t"
    break
  fi
  say "make $t: ${took[$t]}"
  tail -3 "$LOG.$t"
done

{
  echo "check-fresh $(date -u +%FT%TZ) commit $(git -C "$REPO" rev-parse --short HEAD)"
  echo "  debootstrap: $((t1 - t0)) s"
  for t in $TARGETS; do echo "  make $t: ${took[$t]:-not run}"; done
  echo "  total: $(( $(stamp) - t0 )) s"
} | tee "$LOG"
exit $rc
