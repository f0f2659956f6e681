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
#   chromium           headless browser for the /graph page test (ops)
#   openjdk-17-jre-headless, maven
#                      to fetch and run the Kafka broker (scripts/kafka.sh); only
#                      installed if java/mvn are missing altogether
set -euo pipefail
cd "$(dirname "$0")/.."

# == Python: the plugin SDK (plugins/python) and its test tools, in a
# virtualenv under the git-ignored .cache/ (scripts/test.sh exports its
# interpreter as SLUICE_PYTHON). The SDK is installed editable, so source
# changes need no reinstall; the stamp makes a second run a no-op.
python_deps() {
  local pyvenv=.cache/python grpcio_tools stamp
  grpcio_tools=$(sed -n 's/^GRPCIO_TOOLS=//p' scripts/proto.sh)
  stamp="$grpcio_tools $(sha256sum <plugins/python/pyproject.toml | cut -c1-16)"
  [[ "$(cat "$pyvenv/.sluice-stamp" 2>/dev/null)" == "$stamp" ]] && return 0
  echo "deps.sh: installing the Python plugin SDK into $pyvenv" >&2
  [[ -x "$pyvenv/bin/python" ]] || python3 -m venv "$pyvenv"
  "$pyvenv/bin/pip" install -q --disable-pip-version-check \
    "grpcio-tools==$grpcio_tools" pytest setuptools -e ./plugins/python
  echo "$stamp" >"$pyvenv/.sluice-stamp"
}


packages=(kcat graphviz protobuf-compiler chromium docker-compose)
# python3 with venv for the plugin SDK (plugins/python): Debian's, unless
# one with a working venv module is already on PATH.
python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3 python3-venv)

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
  python_deps
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

python_deps
