"""A plugin for the SDK's own tests: upper-cases values; a value starting
with b"bad" raises; b"drop" is filtered; b"twice" is doubled; b"log" logs
a line and prints one. Its hooks write marker files into $MARKER_DIR."""

import dataclasses
import logging
import os

from sluice_plugin import FieldError, Plugin, serve


@dataclasses.dataclass
class Config:
    suffix: str = ""
    repeat: int = 1

    def validate(self):
        if self.repeat < 1:
            raise FieldError("repeat", "must be >= 1")


def process(record):
    v = record.value or b""
    if v.startswith(b"bad"):
        raise ValueError("bad record " + v.decode())
    if v == b"drop":
        return []
    if v == b"log":
        logging.getLogger("demo").info("logged", extra={"pid": os.getpid()})
        print("hello from print")
    cfg = plugin.config
    record.value = v.upper() + cfg.suffix.encode()
    if v == b"twice":
        return [record, record.copy()]
    return [record] * cfg.repeat


def _marker(name):
    d = os.environ.get("MARKER_DIR")
    if d:
        with open(os.path.join(d, name), "w") as f:
            f.write(name)


plugin = Plugin("demo", "1.2.3", process=process, config=Config,
                drain=lambda: _marker("drained"), close=lambda: _marker("closed"))

if __name__ == "__main__":
    serve(plugin)
