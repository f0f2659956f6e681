#!/usr/bin/env bash
# The one command that runs every test on a fresh machine (README: `make test`).
# It installs what the tests need, starts a real Apache Kafka broker (KRaft,
# from Maven Central), runs lint and all tests, and stops the broker whatever
# happens.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
scripts/kafka.sh start
trap 'scripts/kafka.sh stop || true' EXIT
eval "$(scripts/kafka.sh env)"

echo "== lint"
unformatted=$(gofmt -l $(git ls-files '*.go' | grep -v '\.pb\.go$') 2>/dev/null || true)
if [ -n "$unformatted" ]; then
	echo "gofmt needed:"; echo "$unformatted"; exit 1
fi
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== unit and integration tests"
go test -count=1 -timeout 45m ${TEST_FLAGS:-} ./...

echo "== race detector on the engine"
go test -count=1 -race -timeout 10m ./flow/...
