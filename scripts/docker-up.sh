#!/usr/bin/env bash
# Make a Docker engine available for `make image` / `make image-test` (CI and fresh machines).
#
# Installs Debian's docker.io and debootstrap (for scripts/base-image.sh's stand-in base) when they
# are missing, then starts dockerd if none answers. The engine leaves the machine's network alone:
# no iptables rules, no IP forwarding, no masquerading. The default bridge stays on, because
# `sam local invoke` / `start-api` publish the emulator's port on 127.0.0.1 and reach it through
# docker-proxy (with `--bridge=none` sam local times out and exits 0 with empty output); builds and
# the image tests use `--network host`. Containers on the bridge get no route out (no NAT).
# Exits non-zero, with one line saying why, when no engine can run.
set -uo pipefail
LOG="${DOCKERD_LOG:-/tmp/dockerd.log}"

missing=()
{ command -v docker > /dev/null && command -v dockerd > /dev/null; } || missing+=(docker.io)
command -v debootstrap > /dev/null || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get > /dev/null; then
    echo "${missing[*]} not installed and cannot be installed here (needs root and apt-get)" >&2
    [[ " ${missing[*]} " == *" docker.io "* ]] && exit 1
  else
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") > /dev/null 2>&1 \
      || { echo "apt-get install ${missing[*]} failed" >&2; command -v dockerd > /dev/null || exit 1; }
  fi
fi
docker info > /dev/null 2>&1 && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "no Docker engine is running and starting one needs root" >&2
  exit 1
fi
setsid nohup dockerd --iptables=false --ip-forward=false --ip-masq=false > "$LOG" 2>&1 < /dev/null &
for _ in $(seq 60); do
  docker info > /dev/null 2>&1 && { echo "dockerd started (log: $LOG)"; exit 0; }
  sleep 1
done
echo "dockerd did not start within 60 s: $(tail -n 1 "$LOG" 2>/dev/null)" >&2
exit 1
