"""The demo plugin as a separate process, started the way sluice starts it."""

import json
import os
import subprocess
import sys
import time

import grpc

from sluice_plugin import FieldError, Record
from sluice_plugin.testing import exec_plugin

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "plugins", "demo.py")
SRC = os.path.join(HERE, "..", "src")


def demo(tmp_path, **kw):
    # The environment is the plugin's whole environment, as under sluice:
    # PYTHONPATH only so that an uninstalled source tree is importable.
    env = {"MARKER_DIR": str(tmp_path), "PYTHONPATH": SRC}
    return exec_plugin([sys.executable, DEMO], env=env, **kw)


def wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)  # polling an outside process's effect, not synchronising threads
    return False


def test_round_trip_and_hooks(tmp_path):
    log = open(tmp_path / "stderr", "w+")
    with demo(tmp_path, stderr=log) as p:
        assert p.pid > 0
        info = p.info()
        assert (info.name, info.version, info.sdk) == ("demo", "1.2.3", "sluice-python-sdk")
        assert p.configure({"repeat": 0}) == [FieldError("repeat", "must be >= 1")]
        assert p.configure({"suffix": "!"}) == []
        res = p.process(Record(b"a"), Record(b"bad1"), Record(b"drop"), Record(b"twice"), Record(b"log"))
        assert [o.value for o in res[0].outputs] == [b"A!"]
        assert res[1].error == "ValueError: bad record bad1"
        assert res[2].outputs == [] and res[2].error is None
        assert len(res[3].outputs) == 2
        assert p.drain() == (1, 5)
        assert (tmp_path / "drained").exists()
        pid = p.pid
    assert (tmp_path / "closed").exists()
    # Shutdown made it exit.
    assert wait_for(lambda: not _alive(pid))
    log.seek(0)
    lines = [json.loads(line) for line in log.read().splitlines()]
    start = [ln for ln in lines if ln.get("@message") == "logged"]
    assert start and start[0]["@level"] == "info" and start[0]["@module"] == "demo" and "pid" in start[0]
    assert start[0]["@timestamp"].endswith("Z")
    printed = [ln for ln in lines if ln.get("@message") == "plugin stdout"]
    assert printed and printed[0]["line"] == "hello from print"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not reaped by the harness yet) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_run_by_hand_says_so():
    r = subprocess.run([sys.executable, DEMO], env={"PYTHONPATH": SRC}, capture_output=True, timeout=30)
    assert r.returncode == 1
    assert r.stdout == b""
    assert b"is a sluice plugin: sluice starts it" in r.stderr


def test_exits_when_the_host_connection_closes(tmp_path):
    p = demo(tmp_path)
    pid = p.pid
    # What go-plugin's host does first: open the stdio stream; then vanish
    # without Close.
    ch = grpc.insecure_channel(p._channel._channel.target().decode())
    stream = ch.unary_stream("/plugin.GRPCStdio/StreamStdio")(b"")  # held open, like the host's
    assert p.info().name == "demo"
    assert stream.is_active()
    ch.close()
    p._channel.close()
    assert wait_for(lambda: (tmp_path / "closed").exists()), "close hook did not run"
    assert wait_for(lambda: not _alive(pid)), "plugin did not exit"
