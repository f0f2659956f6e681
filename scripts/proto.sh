#!/usr/bin/env bash
# Regenerate the Go code of sluice's protobuf files (the plugin protocol).
# The generated files are committed; run this (or `make proto`) after editing
# a .proto file and commit the result.
#
# protoc comes from Debian's protobuf-compiler package; the Go generators are
# pinned here and installed into a tools directory outside the repository, so
# every machine generates byte-identical code.
set -euo pipefail

PROTOC_GEN_GO=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC=google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2

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
echo "proto.sh: generated $(printf '%s ' "${dirs[@]}")" >&2
