"""The plugin side of plugins/proto: the Processor service, and the small
go-plugin services the host expects (health, controller, stdio)."""

from __future__ import annotations

import logging
import queue
import threading

import grpc

from . import _wire
from ._config import configure
from ._proto import sluice_plugin_pb2 as pb
from ._proto import sluice_plugin_pb2_grpc as pb_grpc
from ._record import Record

__all__ = ["BatchError", "Plugin", "Results", "Service", "PROTOCOL_VERSION", "SDK_NAME"]

PROTOCOL_VERSION = 1
SDK_NAME = "sluice-python-sdk"
DEFAULT_MAX_MESSAGE = 64 << 20

log = logging.getLogger("sluice_plugin")


class BatchError(Exception):
    """Raised from process_batch: every record of the batch fails with this
    message. Any other exception is narrowed down to the records that raise
    on their own."""


class Plugin:
    """A plugin. Give exactly one of process and process_batch.

    process(record) -> list[Record]: one record in; none out filters it,
    several flat-map it. An exception fails that record alone (it goes to
    the node's on_error); the plugin keeps running.

    process_batch(records, out) handles a whole batch: call out.emit(i, r)
    for outputs and out.fail(i, err) for failures, in input order.

    config is a dataclass the node's `config:` block is decoded into before
    any record arrives; the result is plugin.config. A validate() method on
    it runs next (raise FieldError or ConfigError, or return a list of
    FieldError).

    drain() runs when the host will send no more batches and every batch
    was answered; close() runs before the process ends.
    """

    def __init__(
        self,
        name: str,
        version: str,
        process=None,
        process_batch=None,
        config=None,
        drain=None,
        close=None,
    ):
        if (process is None) == (process_batch is None):
            raise TypeError("Plugin: give exactly one of process and process_batch")
        for what, fn in (("process", process), ("process_batch", process_batch), ("drain", drain), ("close", close)):
            if fn is not None and not callable(fn):
                raise TypeError(f"Plugin: {what} must be callable")
        if config is not None and not isinstance(config, type):
            raise TypeError("Plugin: config must be a dataclass type (the class, not an instance)")
        self.name = name
        self.version = version
        self.process = process
        self.process_batch = process_batch
        self.config_type = config
        self.config = None
        self.drain = drain
        self.close = close

    def __repr__(self) -> str:
        return f"Plugin({self.name!r}, {self.version!r})"


_FAILED = -1


def _message(e: BaseException) -> str:
    if isinstance(e, BatchError):
        return str(e) or "batch failed"
    msg = str(e)
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _check_output(r) -> None:
    if type(r) is not Record and not isinstance(r, Record):
        raise TypeError(f"outputs must be sluice_plugin.Record, not {type(r).__name__}")
    v = r.value
    if v is not None and type(v) is not bytes and not isinstance(v, (bytes, bytearray, memoryview)):
        raise TypeError(f"Record.value must be bytes or None, not {type(v).__name__} (encode a str with .encode())")
    k = r.key
    if k is not None and type(k) is not bytes and not isinstance(k, (bytes, bytearray, memoryview)):
        raise TypeError(f"Record.key must be bytes or None, not {type(k).__name__}")


class _State:
    """One batch's reply under construction."""

    __slots__ = ("outs", "counts", "errs", "last", "bad", "cols")

    def __init__(self, n: int):
        # cols, when set, is the whole reply in columns: (blob, lens) of new
        # values, or () for the inputs unchanged (emit_values, emit_all).
        self.cols = None
        self.outs: list = []
        self.counts = [0] * n
        self.errs: dict = {}
        self.last = 0
        self.bad: str | None = None

    def misuse(self, msg: str) -> None:
        if self.bad is None:
            self.bad = msg


class Results:
    """Collects what process_batch produced, attributed to input records by
    index. Calls must follow input order: emit(3, ...) after emit(5, ...) is
    refused (the batch fails with an error saying so)."""

    __slots__ = ("_st", "_base", "_n", "_in")

    def __init__(self, st: _State, base: int, n: int, inputs=None):
        self._st = st
        self._base = base
        self._n = n
        self._in = inputs

    def emit(self, i: int, record: Record) -> None:
        """Adds an output of input record i."""
        st = self._st
        if not 0 <= i < self._n:
            st.misuse(f"Results.emit({i}) with {self._n} input records")
            return
        _check_output(record)
        j = self._base + i
        c = st.counts[j]
        if st.cols is not None:
            st.misuse(f"Results.emit({i}) after emit_all or emit_values")
            return
        if j < st.last:
            st.misuse(f"Results.emit({i}) after a call for record {st.last - self._base}: outputs must follow input order")
            return
        if c == _FAILED:
            st.misuse(f"Results.emit({i}) for a record that failed")
            return
        st.last = j
        st.counts[j] = c + 1
        st.outs.append(record)

    def _whole(self, what: str) -> bool:
        """Whether a call covering every input may come now."""
        st = self._st
        if st.cols is not None or any(st.counts[self._base : self._base + self._n]):
            st.misuse(f"Results.{what} after other calls for the same batch")
            return False
        return True

    def emit_all(self, records) -> None:
        """Emits records[i] as the one output of input i, for every input.
        Given the batch itself, untouched, its records are copied column by
        column: the fast path of a filter that keeps everything, or of a
        plugin that only looks."""
        if len(records) != self._n:
            self._st.misuse(f"Results.emit_all with {len(records)} records for {self._n} inputs")
            return
        if not self._whole("emit_all"):
            return
        st = self._st
        if records is self._in and isinstance(records, _wire.Batch) and records.untouched():
            st.cols = ()
        else:
            for r in records:
                _check_output(r)
            st.outs.extend(records)
        base = self._base
        st.counts[base : base + self._n] = [1] * self._n
        st.last = base + self._n - 1

    def emit_values(self, values) -> None:
        """Emits, for every input i, one output: input i with values[i] as
        its value (bytes, or None for a tombstone), key, headers and
        timestamp kept. The fast path of a map over values."""
        st = self._st
        if len(values) != self._n:
            st.misuse(f"Results.emit_values with {len(values)} values for {self._n} inputs")
            return
        if not self._whole("emit_values"):
            return
        blob, lens = _wire.nullable(list(values), "value")  # TypeError for a wrong type
        inputs = self._in
        if isinstance(inputs, _wire.Batch) and inputs.has_message():
            st.cols = (blob, lens)
            base = self._base
            st.counts[base : base + self._n] = [1] * self._n
            st.last = base + self._n - 1
            return
        for i, v in enumerate(values):
            self.emit(i, inputs[i].copy(value=v))

    def fail(self, i: int, err) -> None:
        """Marks input record i as failed (err: an exception or a message):
        it goes to the node's error policy. A record cannot both have
        outputs and fail."""
        st = self._st
        if not 0 <= i < self._n:
            st.misuse(f"Results.fail({i}) with {self._n} input records")
            return
        j = self._base + i
        c = st.counts[j]
        if st.cols is not None:
            st.misuse(f"Results.fail({i}) after emit_all or emit_values")
            return
        if c == _FAILED:
            return  # the first error wins
        if c > 0:
            st.misuse(f"Results.fail({i}) for a record that already has outputs")
            return
        if err is None:
            msg = "record failed (fail called with None)"
        elif isinstance(err, BaseException):
            msg = _message(err)
        else:
            msg = str(err)
        st.last = max(st.last, j)
        st.counts[j] = _FAILED
        st.errs[j] = msg

    def __len__(self) -> int:
        return self._n


def _per_record(fn):
    """process(record) as a batch function: each call guarded on its own.
    Outputs are type-checked when encoded (see Service._repair), not here."""

    def run(records, st: _State, base: int) -> None:
        outs = st.outs
        counts = st.counts
        extend = outs.extend
        i = base
        for r in records:
            try:
                res = fn(r)
            except BaseException as e:  # noqa: BLE001 - a record's failure never ends the process
                counts[i] = _FAILED
                st.errs[i] = _message(e)
                i += 1
                continue
            if type(res) is not list:
                try:
                    res = _as_list(res)
                except TypeError as e:
                    counts[i] = _FAILED
                    st.errs[i] = _message(e)
                    i += 1
                    continue
            counts[i] = len(res)
            extend(res)
            i += 1
        st.last = i - 1

    return run


def _as_list(res) -> list:
    if res is None:
        raise TypeError("process returned None: return [] to filter a record out, [record] to keep it")
    if isinstance(res, Record):
        raise TypeError("process returned a Record: return a list ([record])")
    if isinstance(res, (bytes, str)):
        raise TypeError(f"process returned {type(res).__name__}: return a list of Records")
    return list(res)


class Service(pb_grpc.ProcessorServicer):
    """The Processor service of a Plugin."""

    def __init__(self, plugin: Plugin, max_message: int = DEFAULT_MAX_MESSAGE):
        if not isinstance(plugin, Plugin):
            raise TypeError(f"serve needs a sluice_plugin.Plugin, got {type(plugin).__name__}")
        self.plugin = plugin
        self.max_message = max_message
        self._cond = threading.Condition()
        self._streams = 0
        self._draining = False
        self._closing = threading.Lock()
        self._close_done = False
        self.closed = threading.Event()  # the host sent Close
        self.batches = 0
        self.records = 0
        if plugin.process is not None:
            self._records_fn = _per_record(plugin.process)
        else:
            self._records_fn = None

    # -- Processor --

    def Info(self, request, context):
        p = self.plugin
        return pb.InfoResponse(name=p.name, version=p.version, protocol_version=PROTOCOL_VERSION, sdk=SDK_NAME)

    def Configure(self, request, context):
        cfg, errs = configure(self.plugin.config_type, request.config_json)
        res = pb.ConfigureResponse()
        if errs:
            for fe in errs:
                res.errors.add(field=fe.field, message=fe.message)
        else:
            self.plugin.config = cfg
        return res

    def _enter(self) -> bool:
        with self._cond:
            if self._draining:
                return False
            self._streams += 1
            return True

    def _leave(self) -> None:
        with self._cond:
            self._streams -= 1
            if self._streams == 0:
                self._cond.notify_all()

    def Process(self, request_iterator, context):
        if not self._enter():
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "plugin is draining: no new streams")
        # Receiving (and parsing) the next batch overlaps processing this one:
        # a reader thread stays one batch ahead. The host's credit window
        # bounds what it can have queued.
        q: queue.SimpleQueue = queue.SimpleQueue()
        failure: list = []

        def read() -> None:
            try:
                for b in request_iterator:
                    q.put(b)
            except Exception as e:  # the stream broke: the handler ends too
                failure.append(e)
            q.put(None)

        threading.Thread(target=read, name="sluice-recv", daemon=True).start()
        try:
            while True:
                batch = q.get()
                if batch is None:
                    break
                yield self.handle(batch)
        finally:
            self._leave()

    def Drain(self, request, context):
        with self._cond:
            self._draining = True
            remaining = context.time_remaining() if context is not None else None
            if not self._cond.wait_for(lambda: self._streams == 0, timeout=remaining):
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "drain: Process streams still open")
        if self.plugin.drain is not None:
            try:
                self.plugin.drain()
            except Exception as e:
                log.error("drain failed", extra={"err": _message(e)})
                context.abort(grpc.StatusCode.INTERNAL, f"drain: {_message(e)}")
        return pb.DrainResponse(batches=self.batches, records=self.records)

    def Close(self, request, context):
        self.closed.set()
        try:
            self.close_hook()
        except Exception as e:
            context.abort(grpc.StatusCode.INTERNAL, f"close: {_message(e)}")
        return pb.CloseResponse()

    def close_hook(self) -> None:
        """Runs the plugin's close hook once, whoever asks first."""
        with self._closing:
            if self._close_done:
                return
            self._close_done = True
            if self.plugin.close is not None:
                self.plugin.close()

    # -- the data path --

    def handle(self, batch) -> pb.Result:
        """One batch in, its Result out. Never raises."""
        res = pb.Result(seq=batch.seq)
        try:
            if self._records_fn is not None:
                records = _wire.decode(batch.records)
            else:
                records = _wire.Batch(batch.records)
        except Exception as e:
            res.batch_error = f"sdk: cannot decode batch: {e}"
            return res
        n = len(records)
        self.batches += 1
        self.records += n
        st = _State(n)
        try:
            self._run(records, st)
        except BatchError as e:
            res.batch_error = _message(e)
            return res
        if st.bad is not None:
            res.batch_error = f"sdk: {st.bad}"
            return res
        try:
            out = res.records
            out.SetInParent()
            if st.cols is None:
                try:
                    _wire.encode(st.outs, out)
                except (TypeError, AttributeError):
                    # An output of the wrong type: fail the records that
                    # produced one, encode the rest.
                    self._repair(st)
                    out.Clear()
                    out.SetInParent()
                    _wire.encode(st.outs, out)
            else:
                _wire.copy_columns(batch.records, out, st.cols)
        except Exception as e:  # an output that passed the checks yet cannot be encoded
            res.Clear()
            res.seq = batch.seq
            res.batch_error = f"sdk: cannot encode outputs: {_message(e)}"
            return res
        counts = st.counts
        errs = st.errs
        if errs or counts.count(1) != n:
            res.output_counts.extend([0 if c == _FAILED else c for c in counts])
            for i in sorted(errs):
                res.errors.add(index=i, message=errs[i])
        if len(out.values) + len(out.keys) + len(out.header_data) > self.max_message // 2:
            size = res.ByteSize()
            if size > self.max_message:
                res.Clear()
                res.seq = batch.seq
                res.batch_error = (
                    f"outputs of this batch take {size} bytes, above the {self.max_message}-byte message limit; "
                    "lower the node's batch.size or batch.bytes"
                )
        return res

    @staticmethod
    def _repair(st: _State) -> None:
        kept = []
        o = 0
        for i, c in enumerate(st.counts):
            if c <= 0:
                continue
            mine = st.outs[o : o + c]
            o += c
            try:
                for r in mine:
                    _check_output(r)
            except TypeError as e:
                st.counts[i] = _FAILED
                st.errs[i] = _message(e)
                continue
            kept.extend(mine)
        st.outs[:] = kept

    def _run(self, records: list, st: _State) -> None:
        if self._records_fn is not None:
            self._records_fn(records, st, 0)
            return
        fn = self.plugin.process_batch
        try:
            fn(records, Results(st, 0, len(records), records))
            return
        except BatchError:
            raise
        except BaseException:  # noqa: BLE001 - narrowed down below
            pass
        # The exception cannot be pinned on a record from here: redo the
        # batch one record at a time; the records that raise alone fail.
        n = len(records)
        st.outs.clear()
        st.counts[:] = [0] * n
        st.errs.clear()
        st.last = 0
        st.bad = None
        st.cols = None
        for i in range(n):
            mark = len(st.outs)
            one = records[i : i + 1]
            try:
                fn(one, Results(st, i, 1, one))
            except BaseException as e:  # noqa: BLE001
                del st.outs[mark:]
                st.counts[i] = _FAILED
                st.errs[i] = _message(e)
                st.last = i


# -- go-plugin's services, served without their stubs (their messages are
# trivial: Empty, and a one-field health response) --

_SERVING = b"\x08\x01"  # grpc.health.v1.HealthCheckResponse{status: SERVING}


def _identity(b: bytes) -> bytes:
    return b


class GoPluginServices:
    """grpc.health.v1.Health (Check: SERVING), plugin.GRPCController
    (Shutdown) and plugin.GRPCStdio (StreamStdio: held open, never sends;
    its end tells the host's connection closed)."""

    def __init__(self, on_shutdown, on_conn_end):
        self._on_shutdown = on_shutdown
        self._on_conn_end = on_conn_end
        self.stopping = threading.Event()

    def handlers(self):
        def check(req, ctx):
            return _SERVING

        def shutdown(req, ctx):
            self._on_shutdown()
            return b""

        def stdio(req, ctx):
            ctx.add_callback(self._on_conn_end)
            self.stopping.wait()
            return
            yield  # a generator that sends nothing

        return [
            grpc.method_handlers_generic_handler(
                "grpc.health.v1.Health",
                {"Check": grpc.unary_unary_rpc_method_handler(check, _identity, _identity)},
            ),
            grpc.method_handlers_generic_handler(
                "plugin.GRPCController",
                {"Shutdown": grpc.unary_unary_rpc_method_handler(shutdown, _identity, _identity)},
            ),
            grpc.method_handlers_generic_handler(
                "plugin.GRPCStdio",
                {"StreamStdio": grpc.unary_stream_rpc_method_handler(stdio, _identity, _identity)},
            ),
        ]
