#!/usr/bin/env bash
# `make bench`: every benchmark with its baseline from the same run, printed
# as a table and as ratios. Starts the Kafka broker for the Kafka ones.
# BENCH_QUICK=1 shortens runs (numbers get noisier).
set -euo pipefail
cd "$(dirname "$0")/.."

out=$(mktemp)
trap 'rm -f "$out"' EXIT
n=${BENCH_RECORDS:-3000000}

bench() { # pkg regex benchtime
	echo "== go test -bench '$2' -benchtime $3 $1" >&2
	go test -count=1 -run '^$' -bench "$2" -benchtime "$3" "$1" 2>&1 | grep -E '^Benchmark' | tee -a "$out" >&2
}

bench ./builtin 'Chain' "${n}x" # Chain and ChainFunc
bench ./builtin 'BackpressureRSS' 1x

# Whole process, startup and drain included: `sluice run` of
# scripts/bench/process.yaml (2M generated records, map, filter, discard).
go build -o bin/sluice ./cmd/sluice
process_records=${PROCESS_RECORDS:-2000000}
for i in 1 2 3; do
	t=$( { COUNT=$process_records /usr/bin/time -f '%e %M' bin/sluice run --log-level error scripts/bench/process.yaml >/dev/null; } 2>&1 | tail -1)
	echo "BenchmarkProcess/sluice-run 1 0 ns/op $(awk -v n="$process_records" '{ printf "%.3f wall-s %.0f rec/s %.1f peakRSS-MB", $1, n/$1, $2/1024 }' <<<"$t")" | tee -a "$out" >&2
done
if [ -d plugins/host ]; then
	# 'Plugin' matches BenchmarkPythonPlugin too, which needs the Python
	# SDK's virtualenv (scripts/deps.sh makes it).
	scripts/deps.sh
	export SLUICE_PYTHON=${SLUICE_PYTHON:-$PWD/.cache/python/bin/python}
	bench ./plugins/host 'Plugin' "${PLUGIN_BENCHTIME:-2s}"
fi
if [ "${BENCH_KAFKA:-1}" = 1 ]; then
	scripts/deps.sh
	scripts/kafka.sh start >&2
	eval "$(scripts/kafka.sh env)"
	export SLUICE_KAFKA_BROKERS
	bench ./connectors/kafka 'KafkaPipeline' 1x
	bench ./connectors/kafka 'KafkaLatency' 1x
fi

# Table: benchmark name, then every custom metric it reported.
echo
printf '%-58s %s\n' BENCHMARK METRICS
awk '{
	name=$1; sub(/-[0-9]+$/, "", name); line="";
	for (i = 3; i < NF; i++) if ($(i+1) ~ /^[a-zA-Z%\/][a-zA-Z0-9%\/-]*$/ && $(i+1) != "ns/op" && $(i+1) != "B/op" && $(i+1) != "allocs/op") { line = line sprintf("%s=%s  ", $(i+1), $i); i++ }
	printf "%-58s %s\n", name, line
}' "$out"

# Ratios: a benchmark's rec/s over its baseline's, from the same run.
echo
ratio() { # label numerator denominator (benchmark names without -N)
	awk -v a="$2" -v b="$3" -v label="$1" '
	{ name=$1; sub(/-[0-9]+$/, "", name); for (i = 3; i < NF; i++) if ($(i+1) == "rec/s") v[name]=$i }
	END { if (v[a] > 0 && v[b] > 0) printf "%-52s %8.2fx   (%.0f vs %.0f rec/s)\n", label, v[a]/v[b], v[a], v[b] }' "$out"
}
ratio "sluice vs go-streams (gen->map->filter->discard)" BenchmarkChain/sluice BenchmarkChain/gostreams
ratio "sluice vs go-streams, Go functions (engine alone)" BenchmarkChainFunc/sluice BenchmarkChainFunc/gostreams
ratio "sluice vs raw kafka-go (kafka->map->kafka)" BenchmarkKafkaPipeline/sluice BenchmarkKafkaPipeline/kafka-go
for size in 100B 1024B; do
	ratio "plugin vs naive go-plugin stream ($size)" "BenchmarkPlugin/$size/plugin" "BenchmarkPlugin/$size/naive"
	ratio "plugin batch API vs naive batched stream ($size)" "BenchmarkPlugin/$size/plugin-batchapi" "BenchmarkPlugin/$size/naive-batched"
	ratio "plugin vs naive batched stream ($size)" "BenchmarkPlugin/$size/plugin" "BenchmarkPlugin/$size/naive-batched"
	ratio "plugin vs in-process stage ($size)" "BenchmarkPlugin/$size/plugin" "BenchmarkPlugin/$size/inprocess"
done
ratio "Python plugin process_batch vs Go plugin (100B)" BenchmarkPythonPlugin/100B/python-process_batch BenchmarkPythonPlugin/100B/go-plugin
ratio "Python plugin process vs Go plugin (100B)" BenchmarkPythonPlugin/100B/python-process BenchmarkPythonPlugin/100B/go-plugin

# Latency: what sluice adds over the tuned kafka-go baseline, per rate.
awk '
{ name=$1; sub(/-[0-9]+$/, "", name); for (i = 3; i < NF; i++) { if ($(i+1) == "p50-ms") p50[name]=$i; if ($(i+1) == "p99-ms") p99[name]=$i } }
END {
	for (r in p99) if (r ~ /KafkaLatency\/.*\/sluice$/) {
		base = r; sub(/sluice$/, "kafka-go", base)
		if (base in p99) printf "%-52s p50 %.1f vs %.1f ms, p99 %.1f vs %.1f ms (adds %.1f ms p99)\n", "kafka->map->kafka latency " r, p50[r], p50[base], p99[r], p99[base], p99[r]-p99[base]
	}
}' "$out"
