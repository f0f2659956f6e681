# Every target works on a fresh machine with Go, Java 17 and Maven; anything
# else (kcat, graphviz, protoc, the Kafka broker) is fetched by the scripts.
.PHONY: all build test test-short bench quickstart proto lint kafka-start kafka-stop clean

all: build

build:
	go build -o bin/sluice ./cmd/sluice

# Starts a real Kafka broker, runs lint and every test, stops the broker.
test:
	scripts/test.sh

# Unit tests only: no broker, Kafka tests skip loudly.
test-short:
	go test -short -count=1 ./...

bench:
	scripts/bench.sh

# generate -> Kafka (embedded dev broker) -> stage -> Kafka + stdout.
# Built, not `go run`: go run exits 1 after Ctrl-C even when sluice drained
# cleanly and exited 0.
quickstart: build
	bin/sluice run --dev configs/quickstart.yaml

proto:
	scripts/proto.sh

lint:
	gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

kafka-start:
	scripts/kafka.sh start

kafka-stop:
	scripts/kafka.sh stop

clean:
	rm -rf bin
