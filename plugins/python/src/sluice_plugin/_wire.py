"""The columnar record encoding of plugins/proto (Records), as the Go side
(plugins/internal/wire) writes and reads it: the same bytes for the same
records.

A batch is a handful of packed fields: one blob of concatenated values plus
a packed list of lengths (length + 1, 0 for null), the same for keys;
headers, timestamps (delta-coded) and origins in side arrays that are left
empty when no record needs them.
"""

from __future__ import annotations

from itertools import repeat as _repeat

from ._proto import sluice_plugin_pb2 as pb
from ._record import Origin, Record

__all__ = ["Batch", "WireError", "decode", "encode", "split"]

_new_origin = tuple.__new__


class WireError(ValueError):
    """A Records message that does not add up."""


def _check_lens(m: pb.Records, n: int) -> None:
    has_origins = len(m.origins) > 0
    for name, got, optional in (
        ("value_lens", len(m.value_lens), False),
        ("key_lens", len(m.key_lens), True),
        ("header_counts", len(m.header_counts), True),
        ("timestamps", len(m.timestamps), True),
        ("origin_refs", len(m.origin_refs), True),
        ("offsets", len(m.offsets), not has_origins),
    ):
        if got != n and not (optional and got == 0):
            raise WireError(f"records: count is {n} but {name} has {got} entries")
    if not has_origins and (len(m.origin_refs) or len(m.offsets)):
        raise WireError("records: origin_refs/offsets set without origins")


def split(blob: bytes, lens, field: str) -> list:
    """Cuts blob into the nullable fields whose lengths (+1) are lens."""
    out = []
    append = out.append
    off = 0
    for lp1 in lens:
        if lp1:
            end = off + lp1 - 1
            append(blob[off:end])
            off = end
        else:
            append(None)
    if off > len(blob):
        raise WireError(f"records: {field} lengths exceed the {len(blob)} bytes sent")
    if off != len(blob):
        raise WireError(f"records: {field} lengths cover {off} of the {len(blob)} bytes sent")
    return out


def _headers(m: pb.Records, n: int) -> list | None:
    counts = m.header_counts
    if not counts:
        if len(m.header_lens) or len(m.header_data):
            raise WireError("records: header data without header_counts")
        return None
    counts = list(counts)
    total = sum(counts)
    lens = list(m.header_lens)
    if len(lens) != 2 * total:
        raise WireError(
            f"records: header_counts add up to {total} headers but header_lens has "
            f"{len(lens)} entries (want 2 per header)"
        )
    data = m.header_data
    out = []
    off = 0
    h = 0
    for c in counts:
        hs = []
        for _ in range(c):
            kl, vl = lens[2 * h], lens[2 * h + 1]
            h += 1
            if off + kl + vl > len(data):
                raise WireError(f"records: header_lens exceed the {len(data)} bytes of header_data")
            k = data[off : off + kl].decode("utf-8", "surrogateescape")
            off += kl
            hs.append((k, data[off : off + vl]))
            off += vl
        out.append(hs)
    if off != len(data):
        raise WireError(f"records: header_lens cover {off} of the {len(data)} bytes of header_data")
    return out


def _undelta(deltas) -> list:
    out = []
    append = out.append
    t = 0
    for d in deltas:
        t += d
        append(t)
    return out


def decode(m: pb.Records) -> list:
    """The records of m, as a list of Record. A malformed message raises
    WireError naming the broken field."""
    n = m.count
    _check_lens(m, n)
    if n == 0:
        return []
    values = split(m.values, m.value_lens, "values")
    if m.key_lens:
        keys = split(m.keys, m.key_lens, "keys")
    else:
        if len(m.keys):
            raise WireError(f"records: key/value lengths cover 0/{len(m.values)} bytes of {len(m.keys)}/{len(m.values)}")
        keys = None
    headers = _headers(m, n)
    ts = _undelta(m.timestamps) if m.timestamps else None
    origins = None
    if m.origins:
        table = [(o.source, o.topic, o.partition) for o in m.origins]
        refs = m.origin_refs
        offsets = _undelta(m.offsets)
        origins = []
        if refs:
            nt = len(table)
            for i, (ref, off) in enumerate(zip(refs, offsets)):
                if ref >= nt:
                    raise WireError(f"records: origin_refs[{i}] = {ref} but there are {nt} origins")
                s, t, p = table[ref]
                origins.append(_new_origin(Origin, (s, t, p, off)))
        else:
            s, t, p = table[0]
            origins = [_new_origin(Origin, (s, t, p, off)) for off in offsets]

    # The common shapes get one map each: no per-record branches.
    if keys is None and headers is None and ts is None:
        if origins is None:
            return list(map(Record, values))
        return list(map(Record, values, _repeat(None, n), _repeat(None, n), _repeat(0, n), origins))
    if keys is None:
        keys = [None] * n
    if headers is None:
        headers = [None] * n
    if ts is None:
        ts = [0] * n
    if origins is None:
        origins = [None] * n
    return list(map(Record, values, keys, headers, ts, origins))


def nullable(items: list, field: str):
    """The blob and length+1 list of a list of bytes-or-None."""
    lens = []
    append = lens.append
    for x in items:
        if x is None:
            append(0)
        elif type(x) is bytes:
            append(len(x) + 1)
        elif isinstance(x, (bytes, bytearray, memoryview)):
            append(len(memoryview(x).cast("B")) + 1)
        else:
            raise TypeError(f"Record.{field} must be bytes or None, not {type(x).__name__}")
    return b"".join([x for x in items if x]), lens


def encode(records: list, m: pb.Records, with_origins: bool = False) -> pb.Records:
    """Fills m (a fresh pb.Records) with records; with_origins sends each
    record's origin (host to plugin only). Returns m."""
    n = len(records)
    m.count = n
    if n == 0:
        return m
    values, value_lens = nullable([r.value for r in records], "value")
    m.values = values
    m.value_lens.extend(value_lens)
    keys = [r.key for r in records]
    if any(k is not None for k in keys):
        blob, lens = nullable(keys, "key")
        m.keys = blob
        m.key_lens.extend(lens)
    hcounts = [len(r.headers) if r.headers else 0 for r in records]
    if any(hcounts):
        data = []
        hlens = []
        for r in records:
            if r.headers:
                for k, v in r.headers:
                    kb = k.encode("utf-8", "surrogateescape") if isinstance(k, str) else bytes(k)
                    vb = bytes(v) if v is not None else b""
                    data.append(kb)
                    data.append(vb)
                    hlens.append(len(kb))
                    hlens.append(len(vb))
        m.header_counts.extend(hcounts)
        m.header_data = b"".join(data)
        m.header_lens.extend(hlens)
    ts = [r.timestamp for r in records]
    if any(ts):
        deltas = []
        prev = 0
        for t in ts:
            t = int(t or 0)
            deltas.append(t - prev)
            prev = t
        m.timestamps.extend(deltas)
    if with_origins:
        table: dict = {}
        refs = []
        offsets = []
        prev = 0
        for r in records:
            o = r.origin or _NO_ORIGIN
            k = (o.source, o.topic, o.partition)
            ref = table.get(k)
            if ref is None:
                ref = table[k] = len(table)
                m.origins.add(source=o.source, topic=o.topic, partition=o.partition)
            refs.append(ref)
            offsets.append(o.offset - prev)
            prev = o.offset
        if any(refs):
            m.origin_refs.extend(refs)
        m.offsets.extend(offsets)
    return m


_NO_ORIGIN = Origin()


class Batch:
    """The input records of one process_batch call: a read-only sequence of
    Record, made on first access, plus column views that make no Record at
    all (values, keys). Passing the batch to Results.emit_all, or its values
    transformed to Results.emit_values, copies the other columns without
    touching records one by one."""

    __slots__ = ("_m", "_n", "_records", "_values", "_keys")

    def __init__(self, m: pb.Records):
        n = m.count
        _check_lens(m, n)
        # What decode would find wrong, found now (C-speed sums), so that a
        # malformed batch fails as one and not inside the plugin's code.
        for blob, lens, field in ((m.values, m.value_lens, "values"), (m.keys, m.key_lens, "keys")):
            lens = list(lens)
            if lens and sum(lens) - len(lens) + lens.count(0) != len(blob) or not lens and len(blob):
                raise WireError(f"records: {field} lengths do not cover the {len(blob)} bytes sent")
        if len(m.header_counts) or len(m.header_lens) or len(m.header_data):
            if 2 * sum(m.header_counts) != len(m.header_lens) or sum(m.header_lens) != len(m.header_data):
                raise WireError("records: header_counts, header_lens and header_data do not add up")
        if len(m.origins) and len(m.origin_refs) and max(m.origin_refs) >= len(m.origins):
            raise WireError(f"records: origin_refs beyond the {len(m.origins)} origins")
        self._m = m
        self._n = m.count
        self._records = None
        self._values = None
        self._keys = None

    @classmethod
    def of(cls, records: list) -> "Batch":
        """A batch of records already decoded (no message behind it)."""
        b = cls.__new__(cls)
        b._m = None
        b._n = len(records)
        b._records = records
        b._values = None
        b._keys = None
        return b

    @property
    def records(self) -> list:
        """The records, as a list (decoded once)."""
        if self._records is None:
            self._records = decode(self._m)
        return self._records

    @property
    def values(self) -> list:
        """Every record's value (bytes, or None for a tombstone), in order."""
        if self._values is None:
            if self._m is None:
                self._values = [r.value for r in self._records]
            else:
                self._values = split(self._m.values, self._m.value_lens, "values")
        return self._values

    @property
    def keys(self) -> list:
        """Every record's key (bytes or None), in order."""
        if self._keys is None:
            m = self._m
            if m is None:
                self._keys = [r.key for r in self._records]
                return self._keys
            self._keys = split(m.keys, m.key_lens, "keys") if m.key_lens else [None] * self._n
        return self._keys

    def untouched(self) -> bool:
        """No Record was handed out: the input message still says it all."""
        return self._records is None and self._m is not None

    def has_message(self) -> bool:
        return self._m is not None

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Batch.of(self.records[i])
        return self.records[i]

    def __iter__(self):
        return iter(self.records)

    def __repr__(self) -> str:
        return f"<sluice_plugin.Batch of {self._n} records>"


def copy_columns(src: pb.Records, dst: pb.Records, values: tuple) -> None:
    """dst gets src's records, with new values when values is (blob,
    lens) (see nullable): keys, headers and timestamps are copied column
    by column."""
    dst.count = src.count
    if not values:
        dst.values = src.values
        dst.value_lens[:] = src.value_lens
    else:
        dst.values = values[0]
        dst.value_lens.extend(values[1])
    if len(src.key_lens):
        dst.keys = src.keys
        dst.key_lens[:] = src.key_lens
    if len(src.header_counts):
        dst.header_counts[:] = src.header_counts
        dst.header_data = src.header_data
        dst.header_lens[:] = src.header_lens
    if len(src.timestamps):
        dst.timestamps[:] = src.timestamps
