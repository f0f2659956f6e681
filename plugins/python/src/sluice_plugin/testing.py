"""Test sluice plugins without a pipeline, through the real protocol:
records are encoded, sent over gRPC, processed and decoded exactly as
sluice does it.

    from sluice_plugin.testing import in_process, exec_plugin

    def test_upper():
        with in_process(plugin) as p:             # this process, a real gRPC server
            res = p.process(Record(b"a"))
            assert res[0].outputs[0].value == b"A"

    def test_executable():
        with exec_plugin(["/path/to/venv/bin/my-plugin"]) as p:  # started as sluice does
            assert p.info().name == "my-plugin"

Both stop the plugin when the with block ends (or on close()).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
import threading
from concurrent import futures

import grpc

from . import _wire
from ._config import FieldError
from ._proto import sluice_plugin_pb2 as pb
from ._proto import sluice_plugin_pb2_grpc as pb_grpc
from ._record import Record
from ._serve import ENV_MAX_MESSAGE, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, server_options
from ._service import DEFAULT_MAX_MESSAGE, Plugin, Service

__all__ = ["Harness", "Info", "Result", "PluginError", "in_process", "exec_plugin"]

RPC_TIMEOUT = 30.0


@dataclasses.dataclass
class Info:
    name: str
    version: str
    sdk: str
    protocol_version: int


@dataclasses.dataclass
class Result:
    """What one input record became: its outputs, or its error message."""

    outputs: list
    error: str | None = None


class PluginError(AssertionError):
    """The plugin broke the protocol, or the transport failed."""


def _decode_result(res, n: int) -> list:
    if res.batch_error:
        return [Result([], res.batch_error) for _ in range(n)]
    recs = _wire.decode(res.records)
    counts = list(res.output_counts)
    out = []
    if not counts:
        if len(recs) != n:
            raise PluginError(f"{len(recs)} outputs for {n} inputs without output_counts")
        out = [Result([r]) for r in recs]
    else:
        if len(counts) != n:
            raise PluginError(f"{len(counts)} output_counts for {n} inputs")
        o = 0
        for c in counts:
            if o + c > len(recs):
                raise PluginError(f"output_counts exceed the {len(recs)} outputs")
            out.append(Result(recs[o : o + c]))
            o += c
        if o != len(recs):
            raise PluginError(f"output_counts cover {o} of the {len(recs)} outputs")
    for e in res.errors:
        if e.index >= n:
            raise PluginError(f"error for record {e.index} of {n}")
        out[e.index].error = e.message
    return out


class _Stream:
    """The Process stream: batches go in through a queue-like iterator."""

    def __init__(self, stub):
        self._cv = threading.Condition()
        self._pending: list = []
        self._done = False
        self._call = stub.Process(self._requests())

    def _requests(self):
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._pending or self._done)
                if self._pending:
                    b = self._pending.pop(0)
                else:
                    return
            yield b

    def send(self, batch) -> None:
        with self._cv:
            self._pending.append(batch)
            self._cv.notify_all()

    def recv(self):
        return next(self._call)

    def close_send(self) -> None:
        with self._cv:
            self._done = True
            self._cv.notify_all()

    def finish(self) -> None:
        self.close_send()
        for _ in self._call:  # the plugin ends its side once all is answered
            pass

    def cancel(self) -> None:
        self.close_send()
        self._call.cancel()


class Harness:
    """A running plugin under test. Transport failures raise PluginError;
    what the plugin reports comes back as values."""

    def __init__(self, target: str, stop, pid: int = 0):
        self._channel = grpc.insecure_channel(target, options=server_options(DEFAULT_MAX_MESSAGE))
        self._stub = pb_grpc.ProcessorStub(self._channel)
        self._stop = stop
        self._stream: _Stream | None = None
        self._seq = 0
        self.pid = pid

    def info(self) -> Info:
        r = self._rpc("Info", self._stub.Info, pb.InfoRequest())
        return Info(r.name, r.version, r.sdk, r.protocol_version)

    def configure(self, config=None) -> list:
        """Hands config (encoded as JSON, like a pipeline's `config:` block)
        to the plugin; returns the FieldErrors it found (empty: valid)."""
        js = json.dumps(config).encode()
        r = self._rpc("Configure", self._stub.Configure, pb.ConfigureRequest(config_json=js))
        return [FieldError(e.field, e.message) for e in r.errors]

    def process(self, *records: Record) -> list:
        """Sends records as one batch; returns a Result per record."""
        if self._stream is None:
            self._stream = _Stream(self._stub)
        self._seq += 1
        b = pb.Batch(seq=self._seq)
        _wire.encode(list(records), b.records, with_origins=True)
        b.records.SetInParent()
        self._stream.send(b)
        try:
            res = self._stream.recv()
        except grpc.RpcError as e:
            raise PluginError(f"receiving a result: {e.code()}: {e.details()}") from None
        except StopIteration:
            raise PluginError("the plugin ended the Process stream") from None
        if res.seq != self._seq:
            raise PluginError(f"result for batch {res.seq}, want {self._seq}")
        return _decode_result(res, len(records))

    def drain(self):
        """Ends the Process stream and calls Drain, as sluice does before
        stopping a plugin. Returns (batches, records) the plugin counted;
        raises PluginError with the plugin's error."""
        if self._stream is not None:
            try:
                self._stream.finish()
            except grpc.RpcError:
                pass
            self._stream = None
        r = self._rpc("Drain", self._stub.Drain, pb.DrainRequest())
        return r.batches, r.records

    def close(self) -> None:
        """Calls the plugin's Close and stops it. Safe to call twice."""
        if self._stop is None:
            return
        if self._stream is not None:
            self._stream.cancel()
            self._stream = None
        try:
            self._stub.Close(pb.CloseRequest(), timeout=RPC_TIMEOUT)
        except grpc.RpcError:
            pass
        stop, self._stop = self._stop, None
        try:
            stop(self._channel)
        finally:
            self._channel.close()

    def _rpc(self, name, fn, req):
        try:
            return fn(req, timeout=RPC_TIMEOUT)
        except grpc.RpcError as e:
            raise PluginError(f"{name}: {e.code()}: {e.details()}") from None

    def __enter__(self) -> "Harness":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def in_process(plugin: Plugin) -> Harness:
    """Serves plugin in this process on a real gRPC server (a Unix socket in
    a temporary directory) and connects to it."""
    svc = Service(plugin)
    d = tempfile.mkdtemp(prefix="sluice-plugin-test-")
    sock = os.path.join(d, "plugin.sock")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=server_options(DEFAULT_MAX_MESSAGE))
    pb_grpc.add_ProcessorServicer_to_server(svc, server)
    server.add_insecure_port("unix:" + sock)
    server.start()

    def stop(_channel) -> None:
        server.stop(grace=None).wait()
        shutil.rmtree(d, ignore_errors=True)

    return Harness("unix:" + sock, stop)


def exec_plugin(cmd, env: dict | None = None, start_timeout: float = 30.0, stderr=None) -> Harness:
    """Starts cmd (an executable path or an argv list) as a separate process
    the way sluice does: an environment of env alone plus the protocol's
    variables, the handshake line read from its stdout. Its stderr (the
    log) goes to this process's stderr, or to stderr (a file) if given."""
    argv = [cmd] if isinstance(cmd, (str, os.PathLike)) else list(cmd)
    d = tempfile.mkdtemp(prefix="sluice-plugin-exec-")
    penv = dict(env or {})
    penv.update(
        {
            MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE,
            "PLUGIN_PROTOCOL_VERSIONS": "1",
            "PLUGIN_UNIX_SOCKET_DIR": d,
            ENV_MAX_MESSAGE: str(DEFAULT_MAX_MESSAGE),
        }
    )
    proc = subprocess.Popen(argv, env=penv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
    line: list = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(start_timeout)
    hs = line[0].decode(errors="replace").strip() if line else ""
    parts = hs.split("|")
    if len(parts) < 5 or parts[0] != "1" or parts[1] != "1" or parts[2] != "unix" or parts[4] != "grpc":
        proc.kill()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)
        raise PluginError(f"{argv[0]}: bad or no handshake line {hs!r} (exit status {proc.returncode})")

    def stop(channel) -> None:
        try:
            channel.unary_unary("/plugin.GRPCController/Shutdown")(b"", timeout=5)
        except grpc.RpcError:
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        shutil.rmtree(d, ignore_errors=True)

    return Harness("unix:" + parts[3], stop, pid=proc.pid)
