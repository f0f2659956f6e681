"""Byte-for-byte agreement with the Go codec: vectors.json is written by
plugins/host/python_vectors_test.go from plugins/internal/wire's encoder."""

import base64
import json
import os

import pytest

from sluice_plugin import Origin, Record
from sluice_plugin import _wire
from sluice_plugin._proto import sluice_plugin_pb2 as pb

with open(os.path.join(os.path.dirname(__file__), "vectors.json")) as f:
    VECTORS = json.load(f)


def b64(s):
    return None if s is None else base64.b64decode(s)


def record(v):
    o = v.get("origin")
    return Record(
        value=b64(v["value"]),
        key=b64(v["key"]),
        headers=[(k, base64.b64decode(x)) for k, x in (v["headers"] or [])],
        timestamp=v["timestamp"],
        origin=Origin(o["source"], o["topic"], o["partition"], o["offset"]) if o else None,
    )


@pytest.mark.parametrize("vec", VECTORS, ids=[v["name"] for v in VECTORS])
def test_same_bytes_as_go(vec):
    records = [record(r) for r in vec["records"] or []]
    m = _wire.encode(records, pb.Records(), with_origins=vec["with_origins"])
    assert m.SerializeToString(deterministic=True).hex() == vec["hex"]
    back = _wire.decode(pb.Records.FromString(bytes.fromhex(vec["hex"])))
    if not vec["with_origins"]:
        for r in records:
            r.origin = None
    assert back == records
