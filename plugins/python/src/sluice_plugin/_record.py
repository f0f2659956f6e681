"""Record and Origin: one message, as sluice stages see it."""

from __future__ import annotations

import datetime as _dt
from operator import itemgetter as _itemgetter

__all__ = ["Record", "Origin"]


class Origin(tuple):
    """Where a record came from: (source, topic, partition, offset),
    read-only for plugins. Outputs always keep their input's origin,
    whatever a plugin sets."""

    __slots__ = ()

    def __new__(cls, source: str = "", topic: str = "", partition: int = 0, offset: int = 0):
        return tuple.__new__(cls, (source, topic, partition, offset))

    source = property(_itemgetter(0), doc="the source node's id")
    topic = property(_itemgetter(1), doc="the topic (or stream) name")
    partition = property(_itemgetter(2), doc="the partition")
    offset = property(_itemgetter(3), doc="the offset in the partition")

    def __repr__(self) -> str:
        return (
            f"Origin(source={self.source!r}, topic={self.topic!r}, "
            f"partition={self.partition}, offset={self.offset})"
        )


class Record:
    """One message.

    key and value are bytes, or None for a null key or value (a Kafka
    tombstone has value None); an empty value stays b"". headers is a list
    of (str, bytes) pairs, in order, repeated keys allowed. timestamp is
    Unix nanoseconds, 0 for "not set" (an output with timestamp 0 gets its
    input's). origin is where an input came from (None when the host sent
    none); outputs keep their input's.
    """

    __slots__ = ("value", "key", "headers", "timestamp", "origin")

    def __init__(
        self,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        timestamp: int = 0,
        origin: Origin | None = None,
    ):
        self.value = value
        self.key = key
        self.headers = [] if headers is None else headers
        self.timestamp = timestamp
        self.origin = origin

    @property
    def time(self) -> _dt.datetime | None:
        """The timestamp as an aware UTC datetime (microseconds), or None."""
        if not self.timestamp:
            return None
        return _dt.datetime.fromtimestamp(self.timestamp / 1e9, tz=_dt.timezone.utc)

    def header(self, key: str) -> bytes | None:
        """The value of the last header named key, or None."""
        for k, v in reversed(self.headers):
            if k == key:
                return v
        return None

    def copy(self, **changes) -> "Record":
        """A new record with the same fields (a new headers list) except changes."""
        r = Record(self.value, self.key, list(self.headers), self.timestamp, self.origin)
        for name, v in changes.items():
            setattr(r, name, v)
        return r

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return (
            self.value == other.value
            and self.key == other.key
            and list(self.headers) == list(other.headers)
            and self.timestamp == other.timestamp
            and self.origin == other.origin
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        parts = [f"value={self.value!r}"]
        if self.key is not None:
            parts.append(f"key={self.key!r}")
        if self.headers:
            parts.append(f"headers={self.headers!r}")
        if self.timestamp:
            parts.append(f"timestamp={self.timestamp}")
        if self.origin is not None:
            parts.append(f"origin={self.origin!r}")
        return "Record(" + ", ".join(parts) + ")"
