"""The Python plugin plugins/host's Go tests run through the real host
(plugins/host/python_test.go): the Python twin of plugins/testdata/passthrough.

It appends config.suffix to every value; a value containing config.fail_on
raises; a value "env" becomes the plugin's environment; drain and close
append a line to config.events. $MODE=batch serves process_batch instead of
process."""

import dataclasses
import logging
import os

from sluice_plugin import FieldError, Plugin, serve

log = logging.getLogger("hostplugin")


@dataclasses.dataclass
class Config:
    suffix: str = ""
    fail_on: str = ""
    events: str = ""

    def validate(self):
        if len(self.suffix) > 16:
            raise FieldError("suffix", "at most 16 bytes")


def event(name):
    log.info("lifecycle event", extra={"event": name})
    if plugin.config and plugin.config.events:
        with open(plugin.config.events, "a") as f:
            f.write(name + "\n")


def process(record):
    cfg = plugin.config
    v = record.value or b""
    if cfg.fail_on and cfg.fail_on.encode() in v:
        raise ValueError("refused: value contains " + cfg.fail_on)
    if v == b"env":
        record.value = "\n".join(f"{k}={v}" for k, v in sorted(os.environ.items())).encode()
        return [record]
    record.value = v + cfg.suffix.encode()
    return [record]


def process_batch(records, out):
    cfg = plugin.config
    fail = cfg.fail_on.encode()
    suffix = cfg.suffix.encode()
    for i, r in enumerate(records):
        if fail and fail in r.value:
            out.fail(i, ValueError("refused: value contains " + cfg.fail_on))
            continue
        r.value += suffix
        out.emit(i, r)


if os.environ.get("MODE") == "batch":
    plugin = Plugin("hostplugin", "0.0.1", process_batch=process_batch, config=Config,
                    drain=lambda: event("drain"), close=lambda: event("close"))
else:
    plugin = Plugin("hostplugin", "0.0.1", process=process, config=Config,
                    drain=lambda: event("drain"), close=lambda: event("close"))

if __name__ == "__main__":
    serve(plugin)
