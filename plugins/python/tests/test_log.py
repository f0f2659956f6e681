import json
import logging
import os

import pytest

from sluice_plugin._log import JSONHandler, LineWriter, hclog_level


@pytest.mark.parametrize("level,want", [
    (5, "trace"), (logging.DEBUG, "debug"), (logging.INFO, "info"),
    (logging.WARNING, "warn"), (logging.ERROR, "error"), (logging.CRITICAL, "error"),
])
def test_levels(level, want):
    assert hclog_level(level) == want


def read_lines(fd):
    os.close(fd[1])
    with os.fdopen(fd[0]) as f:
        return [json.loads(line) for line in f.read().splitlines()]


def test_json_lines_with_attributes_and_tracebacks():
    fd = os.pipe()
    log = logging.getLogger("sluice-test-log")
    log.propagate = False
    h = JSONHandler(fd[1])
    log.addHandler(h)
    try:
        log.warning("disk %s", "full", extra={"path": "/x", "n": 3, "raw": b"\xff"})
        try:
            1 / 0
        except ZeroDivisionError:
            log.exception("failed")
    finally:
        log.removeHandler(h)
    lines = read_lines(fd)
    assert lines[0]["@level"] == "warn" and lines[0]["@message"] == "disk full"
    assert lines[0]["@module"] == "sluice-test-log"
    assert (lines[0]["path"], lines[0]["n"], lines[0]["raw"]) == ("/x", 3, "\ufffd")
    assert lines[0]["@timestamp"].endswith("Z") and len(lines[0]["@timestamp"]) == len("2026-01-02T03:04:05.000000Z")
    assert lines[1]["@level"] == "error" and "ZeroDivisionError" in lines[1]["error"]


def test_print_becomes_log_lines():
    fd = os.pipe()
    w = LineWriter("plugin stdout", fd[1])
    print("one", file=w)
    w.write("two, no newline yet")
    w.flush()
    lines = read_lines(fd)
    assert [(ln["@message"], ln["line"], ln["@level"]) for ln in lines] == [
        ("plugin stdout", "one", "info"), ("plugin stdout", "two, no newline yet", "info")]


def test_a_closed_stderr_never_raises():
    r, w = os.pipe()
    os.close(r)
    h = JSONHandler(w)
    rec = logging.LogRecord("x", logging.INFO, "", 0, "host gone", (), None)
    h.emit(rec)  # EPIPE swallowed (Python ignores SIGPIPE)
    os.close(w)
