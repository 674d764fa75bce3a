#!/usr/bin/env bash
# Make sure the function image's base (python:3.11-slim-bookworm) is in the local Docker engine.
#
# Order: already present -> `docker pull` -> build a stand-in from Debian packages. The stand-in is
# for air-gapped machines and for users behind a registry mirror that does not carry Docker Hub's
# python images: bookworm's own Python is 3.11, so `debootstrap` from the Debian mirror apt already
# uses (or $DEBIAN_MIRROR) gives the same Python and the same glibc as the official slim image.
# pip inside it trusts this machine's CA bundle as well (a TLS-inspecting proxy's CA), kept in its own
# file that the function image's serving stage deletes together with pip and /etc/pip.conf; no index
# URL or credential is written into it (a PyPI mirror reaches the build stages as the build arg
# PIP_INDEX_URL). A TAG pinned by digest (NAME@sha256:...) is pulled or refused, never stood in for.
#
#   scripts/base-image.sh [TAG [ARCH]]     # TAG defaults to python:3.11-slim-bookworm, ARCH to x86_64
#   STAND_IN=1 scripts/base-image.sh       # skip the pull, always build the stand-in
#   scripts/base-image.sh arm64v8/python:3.11-slim-bookworm arm64
#
# ARCH arm64 on an x86_64 machine: the arm64 variant (`docker pull --platform linux/arm64`), or a
# stand-in made with `debootstrap --arch=arm64 --foreign` and its second stage run under qemu
# (scripts/binfmt-arm64.sh registers it), then `FROM scratch` + `ADD` of the root file system with
# `docker build --platform linux/arm64` (`docker import` would label it amd64).
# Needs root (debootstrap) for a stand-in: about a minute and ~190 MB (x86_64), 5-10 minutes (arm64).
set -euo pipefail
TAG="${1:-python:3.11-slim-bookworm}"
ARCH="${2:-x86_64}"
PULL_TIMEOUT="${PULL_TIMEOUT:-60}"
case "$ARCH" in
  x86_64|amd64) ARCH=x86_64; platform=linux/amd64; deb_arch=amd64 ;;
  arm64|aarch64) ARCH=arm64; platform=linux/arm64; deb_arch=arm64 ;;
  *) echo "unknown architecture $ARCH (x86_64 or arm64)" >&2; exit 2 ;;
esac

present_arch="$(docker image inspect -f '{{.Architecture}}' "$TAG" 2>/dev/null || true)"
if [ "$present_arch" = "$deb_arch" ]; then
  echo "base image $TAG ($ARCH): present"
  exit 0
fi
[ -z "$present_arch" ] || echo "base image $TAG: the local one is $present_arch, not $deb_arch; replacing it" >&2
if [[ "$TAG" == *@sha256:* ]]; then
  timeout "$PULL_TIMEOUT" docker pull --quiet --platform "$platform" "$TAG" > /dev/null 2>&1 \
    && { echo "base image $TAG ($ARCH): pulled"; exit 0; }
  echo "base image $TAG cannot be pulled, and a stand-in cannot carry a digest (use a tag)" >&2
  exit 2
fi
if [ "${STAND_IN:-0}" != 1 ] && timeout "$PULL_TIMEOUT" docker pull --quiet --platform "$platform" "$TAG" > /dev/null 2>&1; then
  echo "base image $TAG ($ARCH): pulled"
  exit 0
fi

# The first Debian archive apt is configured with (deb822 or one-line format), unless given.
mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -oE '(https?|file)://[^ ]*/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ' || true)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"
command -v debootstrap > /dev/null || { echo "cannot pull $TAG and debootstrap is missing (apt-get install debootstrap)" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/python-base.XXXXXX")"
rootfs="$work/rootfs"
trap 'rm -rf "$work"' EXIT
echo "base image $TAG: building a $ARCH stand-in from $mirror (bookworm, python3)"
packages=python3,python3-venv,python3-pip,ca-certificates
if [ "$ARCH" = x86_64 ] || [ "$(uname -m)" = aarch64 ]; then
  debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" > "$work/log" 2>&1 \
    || { tail -n 20 "$work/log" >&2; exit 2; }
else
  "$(dirname "$0")/binfmt-arm64.sh" > /dev/null || exit 2
  debootstrap --arch=arm64 --foreign --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" \
    > "$work/log" 2>&1 || { tail -n 20 "$work/log" >&2; exit 2; }
  chroot "$rootfs" /debootstrap/debootstrap --second-stage > "$work/log" 2>&1 \
    || { tail -n 20 "$work/log" "$rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null; exit 2; }
fi

# pip: the host's CA bundle (a private mirror's or proxy's CA included) beside Debian's own, which
# stays as it is; no index URL, no credentials.
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/build-host-ca.crt"
printf '[global]\ncert = /etc/ssl/build-host-ca.crt\n' > "$rootfs/etc/pip.conf"
# Like the official image: pip may install into the system Python, `python`/`pip` on PATH.
rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

if [ "$ARCH" = x86_64 ]; then
  tar -C "$rootfs" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'CMD ["python3"]' - "$TAG" > /dev/null
else
  tar -C "$rootfs" -cf "$work/rootfs.tar" .
  rm -rf "$rootfs"
  printf '%s\n' 'FROM scratch' 'ADD rootfs.tar /' \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    'CMD ["python3"]' > "$work/Dockerfile"
  DOCKER_BUILDKIT=0 docker build --quiet --platform "$platform" -t "$TAG" "$work" > /dev/null
fi
echo "base image $TAG: stand-in built ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
