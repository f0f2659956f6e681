import pytest

from sluice_plugin import Origin, Record, WireError
from sluice_plugin import _wire
from sluice_plugin._proto import sluice_plugin_pb2 as pb


def roundtrip(records, origins=False):
    m = _wire.encode(records, pb.Records(), with_origins=origins)
    m2 = pb.Records.FromString(m.SerializeToString())
    return _wire.decode(m2)


def test_docs_example():
    # docs/plugins.md: values "ab", null, "" and no keys.
    m = _wire.encode([Record(b"ab"), Record(None), Record(b"")], pb.Records())
    assert m.values == b"ab"
    assert list(m.value_lens) == [3, 0, 1]
    assert list(m.key_lens) == []
    assert list(m.header_counts) == [] and list(m.timestamps) == []


def test_roundtrip_every_field():
    recs = [
        Record(b"v1", b"k1", [("a", b"1"), ("a", b"2")], 1_700_000_000_000_000_000, Origin("src", "t", 3, 10)),
        Record(None, None, [], 0, Origin("src", "t", 3, 11)),
        Record(b"", b"", [("", b"")], 5, Origin("src", "u", 0, 2)),
        Record(b"x" * 1000, None, [("h\u00e9", b"\xff")], 1_700_000_000_000_000_001, Origin("src", "t", 3, 12)),
    ]
    assert roundtrip(recs, origins=True) == recs


def test_null_and_empty_stay_distinct():
    out = roundtrip([Record(None, b""), Record(b"", None)])
    assert out[0].value is None and out[0].key == b""
    assert out[1].value == b"" and out[1].key is None


def test_side_arrays_left_empty_when_unused():
    m = _wire.encode([Record(b"a", origin=Origin("s", "t", 0, 5)), Record(b"b", origin=Origin("s", "t", 0, 6))],
                     pb.Records(), with_origins=True)
    assert list(m.key_lens) == [] and list(m.origin_refs) == []
    assert list(m.offsets) == [5, 1]
    assert len(m.origins) == 1


def test_outputs_carry_no_origins():
    m = _wire.encode([Record(b"a", origin=Origin("s", "t", 0, 5))], pb.Records())
    assert len(m.origins) == 0 and list(m.offsets) == []


@pytest.mark.parametrize("mutate,msg", [
    (lambda m: m.value_lens.append(1), "value_lens"),
    (lambda m: setattr(m, "values", b"abcdef"), "values lengths cover"),
    (lambda m: m.key_lens.extend([5, 0]), "keys lengths exceed"),
    (lambda m: m.header_counts.extend([1, 0]), "header_counts add up"),
    (lambda m: m.origin_refs.extend([0, 0]), "without origins"),
])
def test_malformed_is_an_error_naming_the_field(mutate, msg):
    m = _wire.encode([Record(b"ab"), Record(b"c")], pb.Records())
    mutate(m)
    with pytest.raises(WireError, match=msg):
        _wire.decode(m)


def test_value_type_checked():
    with pytest.raises(TypeError, match="bytes or None, not str"):
        _wire.encode([Record("text")], pb.Records())
