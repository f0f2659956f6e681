"""Decoding a node's `config:` block (JSON) into a dataclass, with every
problem reported as a FieldError naming a dotted path below `config`."""

from __future__ import annotations

import dataclasses
import json
import types
import typing

__all__ = ["FieldError", "ConfigError", "configure"]


class FieldError(Exception):
    """A problem with one config field. field is a dotted path below
    `config` ("url", "tls.ca"); "" for the config as a whole.

    Raise it from a config's validate() (or return a list of them) so
    `sluice validate` points at config.<field> in the pipeline file.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldError):
            return NotImplemented
        return (self.field, self.message) == (other.field, other.message)

    __hash__ = Exception.__hash__

    def __repr__(self) -> str:
        return f"FieldError({self.field!r}, {self.message!r})"


class ConfigError(Exception):
    """Several FieldErrors at once: raise ConfigError([...]) from validate()."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


class _Bad(Exception):
    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message


def _json_kind(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true or false"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    return "an object"


def _want(tp) -> str:
    origin = typing.get_origin(tp)
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple):
        return "a list"
    if origin is dict or tp is dict or dataclasses.is_dataclass(tp):
        return "an object"
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _convert(tp, v, path: str):
    if tp is typing.Any or tp is object:
        return v
    origin = typing.get_origin(tp)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        args = typing.get_args(tp)
        if v is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        last = None
        for a in others:
            try:
                return _convert(a, v, path)
            except _Bad as e:
                last = e
        if len(others) == 1 and last is not None:
            raise last
        raise _Bad(path, f"want {' or '.join(_want(a) for a in others)}, got {_json_kind(v)}")
    if origin is typing.Literal:
        if v in typing.get_args(tp):
            return v
        raise _Bad(path, f"want {_want(tp)}, got {json.dumps(v)}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(v, dict):
            raise _Bad(path, f"want an object, got {_json_kind(v)}")
        return _dataclass(tp, v, path)
    if tp is bool:
        if isinstance(v, bool):
            return v
    elif tp is int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, float):
            raise _Bad(path, f"want an integer, got a number ({v})")
    elif tp is float:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    elif tp is str:
        if isinstance(v, str):
            return v
    elif origin in (list, tuple, set, frozenset) or tp in (list, tuple, set, frozenset):
        if isinstance(v, list):
            args = typing.get_args(tp)
            if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
                if len(args) != len(v):
                    raise _Bad(path, f"want a list of {len(args)}, got {len(v)} entries")
                return tuple(_convert(a, x, _join(path, str(i))) for i, (a, x) in enumerate(zip(args, v)))
            el = args[0] if args else typing.Any
            items = [_convert(el, x, _join(path, str(i))) for i, x in enumerate(v)]
            ctor = origin or tp
            return items if ctor is list else ctor(items)
    elif origin is dict or tp is dict:
        if isinstance(v, dict):
            args = typing.get_args(tp)
            vt = args[1] if len(args) == 2 else typing.Any
            return {k: _convert(vt, x, _join(path, k)) for k, x in v.items()}
    else:
        raise _Bad(path, f"unsupported field type {tp!r} in the config dataclass")
    raise _Bad(path, f"want {_want(tp)}, got {_json_kind(v)}")


def _dataclass(cls, obj: dict, path: str):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for k in obj:
        if k not in fields:
            raise _Bad(_join(path, k), "unknown field")
    kwargs = {}
    for name, f in fields.items():
        if name in obj:
            kwargs[name] = _convert(hints.get(name, typing.Any), obj[name], _join(path, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _Bad(_join(path, name), "required")
    return cls(**kwargs)


def _flatten(err) -> list:
    if isinstance(err, FieldError):
        return [err]
    if isinstance(err, ConfigError):
        out = []
        for e in err.errors:
            out.extend(_flatten(e))
        return out
    if isinstance(err, (list, tuple)):
        out = []
        for e in err:
            out.extend(_flatten(e))
        return out
    subs = getattr(err, "exceptions", None)  # ExceptionGroup (3.11+)
    if isinstance(subs, tuple) and isinstance(err, BaseException):
        out = []
        for e in subs:
            out.extend(_flatten(e))
        return out
    if isinstance(err, str):
        return [FieldError("", err)]
    return [FieldError("", str(err) or type(err).__name__)]


def configure(cls, raw: bytes):
    """Decodes raw into a cls instance and validates it. Returns
    (instance or None, [FieldError]). cls None: the plugin takes no config."""
    raw = (raw or b"").strip()
    absent = raw in (b"", b"null")
    if cls is None:
        if absent or raw == b"{}":
            return None, []
        return None, [FieldError("", "this plugin takes no config")]
    try:
        obj = {} if absent else json.loads(raw)
    except ValueError as e:
        return None, [FieldError("", f"invalid config: {e}")]
    if not isinstance(obj, dict):
        return None, [FieldError("", f"want an object, got {_json_kind(obj)}")]
    try:
        cfg = _dataclass(cls, obj, "")
    except _Bad as e:
        return None, [FieldError(e.path, e.message)]
    except FieldError as e:  # raised by a __post_init__
        return None, [e]
    except Exception as e:  # a __post_init__ that failed otherwise
        return None, [FieldError("", f"{type(e).__name__}: {e}")]
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        try:
            res = validate()
        except Exception as e:
            return None, _flatten(e)
        if res:
            return None, _flatten(res)
    return cfg, []
