#!/usr/bin/env bash
# Install the system packages sluice's tests need on a fresh Debian machine
# (CI runs as root). Idempotent and quiet: when everything is already there,
# apt is not touched at all (no `apt-get update`, no network).
#
#   kcat               Kafka CLI: scripts/kafka.sh's fast readiness probe, and
#                      produce/consume from shell tests (not SASL/SCRAM: see
#                      the note in scripts/kafka.sh)
#   graphviz           `dot`
#   protobuf-compiler  `protoc`
#   chromium           headless browser for the /graph page test (flow/ops)
#   openjdk-17-jre-headless, maven
#                      to fetch and run the Kafka broker (scripts/kafka.sh); only
#                      installed if java/mvn are missing altogether
set -euo pipefail

packages=(kcat graphviz protobuf-compiler chromium docker-compose)

missing=()
for pkg in "${packages[@]}"; do
  # dpkg-query tells whether the package is really installed (not just known).
  if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" != installed ]]; then
    missing+=("$pkg")
  fi
done
# Java and Maven may come from outside apt (SDKMAN, a JDK tarball); only
# install Debian's when no java/mvn is on PATH at all.
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)

if ((${#missing[@]} == 0)); then
  exit 0
fi

if ((EUID != 0)); then
  if command -v sudo >/dev/null; then
    SUDO=(sudo)
  else
    echo "deps.sh: need root to install: ${missing[*]}" >&2
    exit 1
  fi
else
  SUDO=()
fi

echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# apt is noisy even with -qq (debconf notes on stderr); keep its output and
# show it only when something fails.
apt_log=$(mktemp)
trap 'rm -f "$apt_log"' EXIT
if ! { "${SUDO[@]}" apt-get update -qq &&
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
  cat "$apt_log" >&2
  echo "deps.sh: apt-get failed" >&2
  exit 1
fi
