"""Logs on stderr in the JSON form sluice parses (hclog's): each line an
object with @level, @message, @timestamp, and other keys as attributes.
sluice forwards them into its own log with their level, tagged with the
node id."""

from __future__ import annotations

import datetime as _dt
import io
import json
import logging
import os
import sys
import threading
import time
import traceback

__all__ = ["JSONHandler", "LineWriter", "hclog_level"]

# Attributes every LogRecord has: anything else came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def hclog_level(levelno: int) -> str:
    if levelno < logging.DEBUG:
        return "trace"
    if levelno < logging.INFO:
        return "debug"
    if levelno < logging.WARNING:
        return "info"
    if levelno < logging.ERROR:
        return "warn"
    return "error"


def _timestamp(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _attr(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


class _Out:
    """Writes whole lines to a file descriptor, never raising: once the
    host is gone stderr is a broken pipe, and a log line must not take the
    plugin down before its close hook ran."""

    def __init__(self, fd: int):
        self.fd = fd
        self.lock = threading.Lock()

    def write_line(self, line: str) -> None:
        data = (line + "\n").encode("utf-8", "replace")
        with self.lock:
            try:
                while data:
                    n = os.write(self.fd, data)
                    data = data[n:]
            except OSError:
                pass


class JSONHandler(logging.Handler):
    """A logging.Handler writing hclog JSON lines to a file descriptor."""

    def __init__(self, fd: int = 2, level: int = logging.NOTSET):
        super().__init__(level)
        self._out = _Out(fd)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            obj = {
                "@level": hclog_level(record.levelno),
                "@message": record.getMessage(),
                "@timestamp": _timestamp(record.created),
            }
            if record.name and record.name != "root":
                obj["@module"] = record.name
            for k, v in vars(record).items():
                if k not in _STANDARD and not k.startswith("_") and not k.startswith("@"):
                    obj[k] = _attr(v)
            if record.exc_info:
                obj["error"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
            line = json.dumps(obj, ensure_ascii=False, default=str)
        except Exception:  # a bad argument must not break the caller
            line = json.dumps({"@level": "error", "@message": "malformed log record", "@timestamp": _timestamp(record.created)})
        self._out.write_line(line)


class LineWriter(io.TextIOBase):
    """A text stream (sys.stdout, sys.stderr after serve) turning each line
    written into an info log line with the text as attribute `line`."""

    def __init__(self, message: str, fd: int = 2):
        self._message = message
        self._out = _Out(fd)
        self._buf = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        with self._lock:
            self._buf += s
            while "\n" in self._buf:
                line, self._buf = self._buf.split("\n", 1)
                self._emit(line)
            if len(self._buf) >= 64 << 10:
                self._emit(self._buf)
                self._buf = ""
        return len(s)

    def flush(self) -> None:
        with self._lock:
            if self._buf:
                self._emit(self._buf)
                self._buf = ""

    def _emit(self, line: str) -> None:
        line = line.rstrip("\r")
        if not line:
            return
        self._out.write_line(
            json.dumps(
                {"@level": "info", "@message": self._message, "@timestamp": _timestamp(time.time()), "line": line},
                ensure_ascii=False,
            )
        )


def install(level: int) -> None:
    """Routes the logging module's records (root logger) and later prints to
    the host's log."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, JSONHandler):
            root.removeHandler(h)
    root.addHandler(JSONHandler(2))
    root.setLevel(level)
    sys.stdout = LineWriter("plugin stdout")
    sys.stderr = LineWriter("plugin stderr")
