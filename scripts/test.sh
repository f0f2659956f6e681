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
# The Python plugin SDK's interpreter (a virtualenv made by deps.sh), for
# the Go tests that run Python plugins (plugins/host, cmd/sluice, e2e).
export SLUICE_PYTHON="$PWD/.cache/python/bin/python"

echo "== lint"
unformatted=$(gofmt -l $(git ls-files '*.go' | grep -v '\.pb\.go$') 2>/dev/null || true)
if [ -n "$unformatted" ]; then
	echo "gofmt needed:"; echo "$unformatted"; exit 1
fi
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== python SDK"
# Unit tests of plugins/python and the Python example plugin, and the check
# that the SDK's generated stubs match plugins/proto (CI=true makes a missing
# grpcio-tools a failure).
"$SLUICE_PYTHON" -m pytest -q -p no:cacheprovider plugins/python/tests examples/plugins/sentiment-py/tests

echo "== unit and integration tests"
# e2e runs on its own afterwards: one of its tests restarts the broker,
# which must not happen under another package's Kafka tests.
go test -count=1 -timeout 30m ${TEST_FLAGS:-} $(go list ./... | grep -v '/e2e$')

echo "== end-to-end tests (the sluice binary as a process)"
go test -count=1 -timeout 40m ${TEST_FLAGS:-} ./e2e/

echo "== race detector (engine, config, components, plugins, CLI; broker tests already ran above)"
go test -count=1 -race -short -timeout 15m ./flow/... ./config/... ./registry/... ./ops/... ./pipelinetest/... ./builtin/... ./expr/... ./adapters/... ./stages/... ./connectors/... ./plugins/... ./cmd/...
