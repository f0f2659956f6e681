#!/usr/bin/env bash
# Regenerate the Go code of sluice's protobuf files (the plugin protocol),
# and the Python SDK's stubs of the plugin protocol (plugins/python).
# The generated files are committed; run this (or `make proto`) after editing
# a .proto file and commit the result.
#
# protoc comes from Debian's protobuf-compiler package; the Go generators are
# pinned here and installed into a tools directory outside the repository, so
# every machine generates byte-identical code.
set -euo pipefail

PROTOC_GEN_GO=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC=google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
# The Python generator (protoc and grpc plugin in one pip package). Also
# read by scripts/deps.sh and plugins/python/tests/test_stubs.py.
GRPCIO_TOOLS=1.85.1

root=$(cd "$(dirname "$0")/.." && pwd)
tools=${SLUICE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/tools}
# One directory per pin: bumping a version can never run a stale binary.
bin="$tools/protoc-gen-go-v1.36.12-grpc-v1.6.2"

if ! command -v protoc >/dev/null; then
  if ((EUID == 0)); then
    echo "proto.sh: installing protobuf-compiler" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
  else
    echo "proto.sh: protoc not found; install it with: sudo apt-get install -y protobuf-compiler" >&2
    exit 1
  fi
fi

if [[ ! -x "$bin/protoc-gen-go" || ! -x "$bin/protoc-gen-go-grpc" ]]; then
  mkdir -p "$bin"
  # go install with @version ignores the current module, so the pins above
  # are the only versions that matter.
  GOBIN="$bin" go install "$PROTOC_GEN_GO"
  GOBIN="$bin" go install "$PROTOC_GEN_GO_GRPC"
fi

cd "$root"
# Each entry: the directory holding .proto files; code is generated next to
# them (paths=source_relative).
dirs=(plugins/proto plugins/internal/naivepb)
for d in "${dirs[@]}"; do
  PATH="$bin:$PATH" protoc \
    --proto_path="$d" \
    --go_out="$d" --go_opt=paths=source_relative \
    --go-grpc_out="$d" --go-grpc_opt=paths=source_relative \
    "$d"/*.proto
done

# Python: grpcio-tools in its own virtualenv outside the repository. The
# virtual path sluice_plugin/_proto makes the generated modules import each
# other as sluice_plugin._proto.*.
pyvenv="$tools/grpcio-tools-$GRPCIO_TOOLS"
if [[ ! -x "$pyvenv/bin/python" ]] || ! "$pyvenv/bin/python" -c 'import grpc_tools' 2>/dev/null; then
  python3 -m venv "$pyvenv"
  "$pyvenv/bin/pip" install -q "grpcio-tools==$GRPCIO_TOOLS"
fi
pyout=plugins/python/src
"$pyvenv/bin/python" -m grpc_tools.protoc \
  --proto_path=sluice_plugin/_proto=plugins/proto \
  --python_out="$pyout" --pyi_out="$pyout" --grpc_python_out="$pyout" \
  sluice_plugin/_proto/sluice_plugin.proto
echo "proto.sh: generated $(printf '%s ' "${dirs[@]}") $pyout/sluice_plugin/_proto" >&2
