import dataclasses

import pytest

from sluice_plugin import BatchError, ConfigError, FieldError, Origin, Plugin, Record, SDK_NAME
from sluice_plugin.testing import PluginError, in_process


def upper(r):
    if r.value == b"bad":
        raise ValueError("bad value")
    if r.value == b"drop":
        return []
    if r.value == b"two":
        return [r, r.copy(value=b"TWO")]
    r.value = r.value.upper()
    return [r]


def test_info():
    with in_process(Plugin("upper", "1.0.0", process=upper)) as p:
        info = p.info()
    assert (info.name, info.version, info.sdk, info.protocol_version) == ("upper", "1.0.0", SDK_NAME, 1)


def test_process_map_filter_flatmap_fail_in_order():
    with in_process(Plugin("upper", "1.0.0", process=upper)) as p:
        res = p.process(Record(b"a", key=b"k", headers=[("h", b"1")], timestamp=7), Record(b"bad"),
                        Record(b"drop"), Record(b"two"), Record(None))
    assert res[0].outputs == [Record(b"A", b"k", [("h", b"1")], 7)]
    assert res[1].outputs == [] and res[1].error == "ValueError: bad value"
    assert res[2].outputs == [] and res[2].error is None
    assert [o.value for o in res[3].outputs] == [b"two", b"TWO"]
    assert res[4].error == "AttributeError: 'NoneType' object has no attribute 'upper'"


def test_map_sends_no_output_counts():
    # One output per input and no error: the common case, output_counts empty.
    from sluice_plugin._service import Service
    from sluice_plugin import _wire
    from sluice_plugin._proto import sluice_plugin_pb2 as pb
    svc = Service(Plugin("upper", "1", process=upper))
    b = pb.Batch(seq=4)
    _wire.encode([Record(b"a"), Record(b"b")], b.records)
    res = svc.handle(b)
    assert res.seq == 4 and list(res.output_counts) == [] and res.records.count == 2
    assert res.records.values == b"AB"


@pytest.mark.parametrize("ret,msg", [
    (None, "process returned None: return []"),
    (Record(b"x"), "process returned a Record"),
    ([b"x"], "outputs must be sluice_plugin.Record, not bytes"),
    ([Record("str")], "Record.value must be bytes or None, not str"),
])
def test_wrong_return_fails_the_record_with_a_clear_message(ret, msg):
    with in_process(Plugin("p", "1", process=lambda r: ret)) as p:
        res = p.process(Record(b"a"))
    assert msg in res[0].error


def test_exceptions_never_end_the_plugin():
    def boom(r):
        if r.value == b"exit":
            raise SystemExit(3)
        raise KeyError("k")
    with in_process(Plugin("p", "1", process=boom)) as p:
        res = p.process(Record(b"exit"), Record(b"x"))
        assert res[0].error == "SystemExit: 3" and res[1].error == "KeyError: 'k'"
        assert p.info().name == "p"


def test_process_batch_emit_and_fail():
    def batch(records, out):
        for i, r in enumerate(records):
            if r.value == b"bad":
                out.fail(i, ValueError("no"))
            elif r.value != b"drop":
                out.emit(i, r)
                out.emit(i, r.copy(value=r.value + b"!"))
    with in_process(Plugin("p", "1", process_batch=batch)) as p:
        res = p.process(Record(b"a"), Record(b"bad"), Record(b"drop"), Record(b"b"))
    assert [o.value for o in res[0].outputs] == [b"a", b"a!"]
    assert res[1].error == "ValueError: no" and res[2].outputs == [] and res[2].error is None
    assert [o.value for o in res[3].outputs] == [b"b", b"b!"]


def test_process_batch_emit_all():
    with in_process(Plugin("p", "1", process_batch=lambda rs, out: out.emit_all(rs))) as p:
        res = p.process(Record(b"a"), Record(b"b"))
    assert [r.outputs[0].value for r in res] == [b"a", b"b"]


def test_process_batch_exception_narrowed_to_the_records_that_raise():
    calls = []

    def batch(records, out):
        calls.append(len(records))
        for i, r in enumerate(records):
            if r.value == b"bad":
                raise RuntimeError("boom")
            out.emit(i, r)
    with in_process(Plugin("p", "1", process_batch=batch)) as p:
        res = p.process(Record(b"a"), Record(b"bad"), Record(b"c"))
    assert calls == [3, 1, 1, 1]
    assert res[0].outputs[0].value == b"a" and res[2].outputs[0].value == b"c"
    assert res[1].error == "RuntimeError: boom" and res[1].outputs == []


def test_batch_error_fails_every_record():
    def batch(records, out):
        raise BatchError("database down")
    with in_process(Plugin("p", "1", process_batch=batch)) as p:
        res = p.process(Record(b"a"), Record(b"b"))
    assert [r.error for r in res] == ["database down", "database down"]


def test_out_of_order_emit_fails_the_batch_saying_so():
    def batch(records, out):
        out.emit(1, records[1])
        out.emit(0, records[0])
    with in_process(Plugin("p", "1", process_batch=batch)) as p:
        res = p.process(Record(b"a"), Record(b"b"))
    assert "outputs must follow input order" in res[0].error


@dataclasses.dataclass
class TLS:
    ca: str = ""


@dataclasses.dataclass
class Cfg:
    url: str
    retries: int = 0
    ratio: float = 1.0
    tags: list[str] = dataclasses.field(default_factory=list)
    tls: TLS = dataclasses.field(default_factory=TLS)
    mode: str | None = None

    def validate(self):
        errs = []
        if not self.url.startswith("http"):
            errs.append(FieldError("url", "must start with http"))
        if self.retries < 0:
            errs.append(FieldError("retries", "must be >= 0"))
        if errs:
            raise ConfigError(errs)


@pytest.mark.parametrize("config,errors", [
    ({"url": "http://x"}, []),
    ({"url": "http://x", "retries": 2, "ratio": 2, "tags": ["a"], "tls": {"ca": "c"}, "mode": None}, []),
    ({"url": "http://x", "nope": 1}, [FieldError("nope", "unknown field")]),
    ({"url": "http://x", "tls": {"cert": "x"}}, [FieldError("tls.cert", "unknown field")]),
    ({"url": "http://x", "retries": "3"}, [FieldError("retries", "want an integer, got a string")]),
    ({"url": "http://x", "retries": 1.5}, [FieldError("retries", "want an integer, got a number (1.5)")]),
    ({"url": "http://x", "tags": ["a", 1]}, [FieldError("tags.1", "want a string, got an integer")]),
    ({"url": "http://x", "mode": 3}, [FieldError("mode", "want a string, got an integer")]),
    ({}, [FieldError("url", "required")]),
    (None, [FieldError("url", "required")]),
    ([1], [FieldError("", "want an object, got a list")]),
    ({"url": "ftp://x", "retries": -1},
     [FieldError("url", "must start with http"), FieldError("retries", "must be >= 0")]),
])
def test_config(config, errors):
    plugin = Plugin("p", "1", process=upper, config=Cfg)
    with in_process(plugin) as p:
        assert p.configure(config) == errors
    if not errors:
        assert plugin.config.url == "http://x"
        assert isinstance(plugin.config.tls, TLS)


def test_validate_error_naming_no_field_is_about_the_whole_config():
    @dataclasses.dataclass
    class C:
        a: int = 0

        def validate(self):
            raise ValueError("a and b conflict")
    with in_process(Plugin("p", "1", process=upper, config=C)) as p:
        assert p.configure({}) == [FieldError("", "a and b conflict")]


def test_no_config_plugin_refuses_a_config():
    with in_process(Plugin("p", "1", process=upper)) as p:
        assert p.configure(None) == []
        assert p.configure({}) == []
        assert p.configure({"a": 1}) == [FieldError("", "this plugin takes no config")]


def test_drain_waits_for_the_stream_and_runs_the_hooks():
    events = []
    with in_process(Plugin("p", "1", process=upper, drain=lambda: events.append("drain"),
                           close=lambda: events.append("close"))) as p:
        p.process(Record(b"a"), Record(b"b"))
        assert p.drain() == (1, 2)
        assert events == ["drain"]
    assert events == ["drain", "close"]


def test_drain_hook_error_is_reported():
    def bad_drain():
        raise OSError("flush failed")
    with in_process(Plugin("p", "1", process=upper, drain=bad_drain)) as p:
        with pytest.raises(PluginError, match="drain: OSError: flush failed"):
            p.drain()


def test_origin_reaches_the_plugin():
    seen = []

    def proc(r):
        seen.append(r.origin)
        return [r]
    with in_process(Plugin("p", "1", process=proc)) as p:
        p.process(Record(b"a", origin=Origin("kafka", "t", 2, 41)), Record(b"b", origin=Origin("kafka", "t", 2, 42)))
    assert seen == [Origin("kafka", "t", 2, 41), Origin("kafka", "t", 2, 42)]


def test_plugin_needs_exactly_one_function():
    with pytest.raises(TypeError, match="exactly one"):
        Plugin("p", "1")
    with pytest.raises(TypeError, match="exactly one"):
        Plugin("p", "1", process=upper, process_batch=lambda r, o: None)


def test_emit_values_keeps_keys_headers_timestamps():
    def batch(records, out):
        out.emit_values([None if v == b"tomb" else v.upper() for v in records.values])
    with in_process(Plugin("p", "1", process_batch=batch)) as p:
        res = p.process(Record(b"a", b"k1", [("h", b"1"), ("h", b"2")], 5), Record(b"tomb", None, [], 0),
                        Record(b"c", b"", [("x", b"")], 9))
    assert res[0].outputs == [Record(b"A", b"k1", [("h", b"1"), ("h", b"2")], 5)]
    assert res[1].outputs == [Record(None)]
    assert res[2].outputs == [Record(b"C", b"", [("x", b"")], 9)]


def test_emit_all_of_the_untouched_batch_copies_it():
    def batch(records, out):
        assert len(records) == 2 and records.keys == [b"k", None]
        out.emit_all(records)
    with in_process(Plugin("p", "1", process_batch=batch)) as p:
        res = p.process(Record(b"a", b"k", [("h", b"1")], 5), Record(None))
    assert res[0].outputs == [Record(b"a", b"k", [("h", b"1")], 5)] and res[1].outputs == [Record(None)]


def test_emit_all_after_changing_records_sends_the_changes():
    def batch(records, out):
        for r in records:
            r.value = b"changed"
        out.emit_all(records)
    with in_process(Plugin("p", "1", process_batch=batch)) as p:
        res = p.process(Record(b"a"), Record(b"b"))
    assert [r.outputs[0].value for r in res] == [b"changed", b"changed"]


def test_emit_values_narrowed_when_one_value_raises():
    def batch(records, out):
        out.emit_values([v + b"!" if v != b"bad" else 1 / 0 for v in records.values])
    with in_process(Plugin("p", "1", process_batch=batch)) as p:
        res = p.process(Record(b"a", b"k"), Record(b"bad"), Record(b"c"))
    assert res[0].outputs == [Record(b"a!", b"k")] and res[2].outputs == [Record(b"c!")]
    assert res[1].error == "ZeroDivisionError: division by zero"


def test_mixing_whole_batch_calls_with_others_fails_the_batch():
    def batch(records, out):
        out.fail(0, "no")
        out.emit_values(records.values)
    with in_process(Plugin("p", "1", process_batch=batch)) as p:
        res = p.process(Record(b"a"), Record(b"b"))
    assert "emit_values after other calls" in res[0].error
