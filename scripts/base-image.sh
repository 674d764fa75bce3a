#!/usr/bin/env bash
# Make sure the function image's base (python:3.11-slim-bookworm) is in the local Docker engine.
#
# Order: already present -> `docker pull` -> build a stand-in from Debian packages. The stand-in is
# for air-gapped machines and for users behind a registry mirror that does not carry Docker Hub's
# python images: bookworm's own Python is 3.11, so `debootstrap` from the Debian mirror apt already
# uses (or $DEBIAN_MIRROR) gives the same Python and the same glibc as the official slim image.
# pip inside it uses this machine's CA bundle and, when set, its $PIP_INDEX_URL (a PyPI mirror).
#
#   scripts/base-image.sh [TAG]            # TAG defaults to python:3.11-slim-bookworm
#   STAND_IN=1 scripts/base-image.sh       # skip the pull, always build the stand-in
#
# Needs root (debootstrap) for the stand-in; takes about a minute and ~190 MB.
set -euo pipefail
TAG="${1:-python:3.11-slim-bookworm}"
PULL_TIMEOUT="${PULL_TIMEOUT:-60}"

if docker image inspect "$TAG" > /dev/null 2>&1; then
  echo "base image $TAG: present"
  exit 0
fi
if [ "${STAND_IN:-0}" != 1 ] && timeout "$PULL_TIMEOUT" docker pull --quiet "$TAG" > /dev/null 2>&1; then
  echo "base image $TAG: pulled"
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

rootfs="$(mktemp -d "${TMPDIR:-/tmp}/python-base.XXXXXX")"
trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
echo "base image $TAG: building a stand-in from $mirror (bookworm, python3)"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$rootfs" "$mirror" > "$rootfs.log" 2>&1 || { tail -n 20 "$rootfs.log" >&2; exit 2; }
rm -f "$rootfs.log"

# pip: the host's CA bundle (a private mirror's CA included) and the host's index, if it names one.
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
{
  echo "[global]"
  echo "cert = /etc/ssl/certs/ca-certificates.crt"
  [ -n "${PIP_INDEX_URL:-}" ] && echo "index-url = $PIP_INDEX_URL"
} > "$rootfs/etc/pip.conf"
# Like the official image: pip may install into the system Python, `python`/`pip` on PATH.
rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/pip"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

tar -C "$rootfs" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'CMD ["python3"]' - "$TAG" > /dev/null
echo "base image $TAG: stand-in built ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}'))"
