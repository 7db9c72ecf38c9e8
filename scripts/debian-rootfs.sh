#!/usr/bin/env bash
# Makes a minimal Debian root filesystem in DIR (debootstrap --variant=minbase), from a cached tarball
# when one exists, so only the first run needs Debian's mirror.
#
#   scripts/debian-rootfs.sh DIR [--include pkg1,pkg2] [--suite bookworm] [--arch amd64]
#
# The cache is a tar of the finished root filesystem, one per suite, architecture and package list, under
# ${LISA_ROOTFS_CACHE:-/var/cache/lisa-rootfs}; LISA_DEBIAN_MIRROR overrides http://deb.debian.org/debian.
# Needs root and debootstrap (apt-get install -y --no-install-recommends debootstrap). DIR must be empty or absent.
set -euo pipefail

usage() { echo "usage: $0 DIR [--include pkg1,pkg2] [--suite SUITE] [--arch ARCH]" >&2; exit 2; }

dir=""; include=""; suite="bookworm"; arch="$(dpkg --print-architecture)"
while [ $# -gt 0 ]; do
    case "$1" in
        --include) [ $# -ge 2 ] || usage; include="$2"; shift 2 ;;
        --include=*) include="${1#--include=}"; shift ;;
        --suite) [ $# -ge 2 ] || usage; suite="$2"; shift 2 ;;
        --arch) [ $# -ge 2 ] || usage; arch="$2"; shift 2 ;;
        -h|--help) usage ;;
        -*) echo "$0: unknown option $1" >&2; usage ;;
        *) [ -z "$dir" ] || usage; dir="$1"; shift ;;
    esac
done
[ -n "$dir" ] || usage
[ "$(id -u)" = 0 ] || { echo "$0: must run as root (debootstrap, chroot)" >&2; exit 1; }
if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
    echo "$0: $dir is not empty" >&2; exit 1
fi

cache="${LISA_ROOTFS_CACHE:-/var/cache/lisa-rootfs}"
mirror="${LISA_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Sorted, de-duplicated package list: the same set gives the same cache file whatever the order.
packages="$(printf '%s' "$include" | tr ', ' '\n\n' | sed '/^$/d' | sort -u | paste -sd, -)"
key="$suite-$arch-minbase"
[ -z "$packages" ] || key="$key-$(printf '%s' "$packages" | sha256sum | cut -c1-12)"
tarball="$cache/$key.tar.gz"

mkdir -p "$cache" "$dir"
exec 9>"$cache/$key.lock"
flock 9   # two runs for the same key: the second waits and unpacks the first one's tarball

if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { echo "$0: debootstrap is missing: apt-get install -y --no-install-recommends debootstrap" >&2; exit 1; }
    work="$(mktemp -d "$cache/.build-$key.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    echo "debian-rootfs: debootstrap $suite ($arch, minbase${packages:+, +$packages}) from $mirror" >&2
    debootstrap --variant=minbase --arch="$arch" ${packages:+--include="$packages"} \
        "$suite" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -30 "$work/debootstrap.log" >&2; echo "$0: debootstrap failed (log above)" >&2; exit 1; }
    # Nothing of the host or the build stays inside: apt lists and caches are re-made by apt-get update.
    rm -rf "$work/root/var/cache/apt/"*.bin "$work/root/var/cache/apt/archives/"*.deb \
        "$work/root/var/lib/apt/lists/"* "$work/root/var/log/"*.log "$work/root/var/log/apt/"* \
        "$work/root/debootstrap"
    printf '%s\n' "$suite $arch minbase $packages" > "$work/root/etc/lisa-rootfs"
    tar --numeric-owner --xattrs -C "$work/root" -czf "$work/rootfs.tar.gz" .
    mv "$work/rootfs.tar.gz" "$tarball"
    printf '%s\n' "$packages" > "$cache/$key.packages"
    rm -rf "$work"; trap - EXIT
else
    echo "debian-rootfs: from cache $tarball" >&2
fi

tar --numeric-owner --xattrs -C "$dir" -xzf "$tarball"
echo "debian-rootfs: $dir ($(du -sh "$dir" | cut -f1))" >&2
