"""Passthrough for benchmarks (plugins/host BenchmarkPythonPlugin): every
record unchanged, through process ($MODE=process) or process_batch (the
default)."""

import os

from sluice_plugin import Plugin, serve


def process(record):
    return [record]


def process_batch(records, out):
    # Every value through Python (sliced out, joined back): a map's cost.
    # out.emit_all(records) would copy the batch without touching a record.
    out.emit_values(records.values)


if os.environ.get("MODE") == "process":
    plugin = Plugin("passthrough-py", "0.0.1", process=process)
else:
    plugin = Plugin("passthrough-py", "0.0.1", process_batch=process_batch)

if __name__ == "__main__":
    serve(plugin)
