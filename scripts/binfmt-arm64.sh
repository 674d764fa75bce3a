#!/usr/bin/env bash
# Let this x86_64 machine run arm64 (aarch64) binaries, for `make image ARCH=arm64` and its tests:
# mounts binfmt_misc when it is not mounted, installs Debian's qemu-user-static when it is missing,
# and registers its aarch64 interpreter with the kernel (the line of
# /usr/lib/binfmt.d/qemu-aarch64.conf; flag F, so containers and chroots need no copy of qemu).
# Idempotent; exits non-zero with one line saying why when it cannot (needs root).
set -euo pipefail
BINFMT=/proc/sys/fs/binfmt_misc
[ "$(uname -m)" = aarch64 ] && { echo "arm64: native"; exit 0; }
if [ -e "$BINFMT/qemu-aarch64" ] && grep -q '^enabled' "$BINFMT/qemu-aarch64"; then
  echo "arm64: emulation registered ($(sed -n 's/^interpreter //p' "$BINFMT/qemu-aarch64"))"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "arm64 emulation is not registered and registering it needs root" >&2; exit 1; }
if [ ! -e "$BINFMT/register" ]; then
  mount -t binfmt_misc binfmt_misc "$BINFMT" 2> /dev/null \
    || { echo "cannot mount binfmt_misc on $BINFMT (a container without that privilege?)" >&2; exit 1; }
fi
conf=/usr/lib/binfmt.d/qemu-aarch64.conf
if [ ! -f "$conf" ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static) > /dev/null 2>&1 \
    || { echo "apt-get install qemu-user-static failed" >&2; exit 1; }
fi
[ -f "$conf" ] || { echo "qemu-user-static installed no $conf" >&2; exit 1; }
# The package's own install may have registered it already (update-binfmts / systemd-binfmt).
[ -e "$BINFMT/qemu-aarch64" ] || grep -v '^#' "$conf" | head -n 1 > "$BINFMT/register" \
  || { echo "the kernel refused the aarch64 binfmt registration from $conf" >&2; exit 1; }
echo "arm64: emulation registered ($(sed -n 's/^interpreter //p' "$BINFMT/qemu-aarch64"))"
