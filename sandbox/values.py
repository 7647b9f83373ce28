"""The wire format of values passed between processes that do not trust each other.

`encode` runs in the program's process (and in the check process, for arguments); `decode`
runs wherever values are judged: the host's assessor and the jail's check process. Only
built-in types cross; anything else arrives as an `Opaque` that equals nothing but itself.

Both sides are bounded. `encode` reads each value through its base type (`int.__format__`,
`list.__iter__`), never through methods a subclass overrides, so an honest program's `int`
subclass is reported as the int it holds. `decode` refuses a payload over `max_bytes`, more
than `MAX_NODES` values, nesting past `MAX_DEPTH`, or numbers and text past `MAX_CHARS`,
raising `ValueLimit` (a `ValueError`, as is anything malformed), so what a program returns
can never cost its judge more than a few megabytes. Standard library only: this file is also
loaded inside the jail.
"""

import json

MAX_DEPTH = 100
MAX_NODES = 200_000  # values in one payload (list items, dict entries, scalars)
MAX_CHARS = 4_000_000  # characters of str, bytes and int text in one payload, together


class ValueLimit(ValueError):
    """A payload over one of the caps: too big to judge, not malformed."""


class Opaque:
    """A value of a type the sandbox does not carry across, known only by its type name."""

    __slots__ = ("type_name",)

    def __init__(self, type_name):
        self.type_name = type_name

    def __repr__(self):
        return f"<{self.type_name} object>"

    def __bool__(self):
        raise TypeError(f"the truth of a {self.type_name} object is not judged")


# Taken once, before any program runs in this process: a program may patch the builtins,
# but only in its own process, after these names are bound.
_int, _float, _complex, _str, _bytes, _bytearray = int, float, complex, str, bytes, bytearray
_list, _tuple, _set, _frozenset, _dict, _range = list, tuple, set, frozenset, dict, range
_isinstance, _type = isinstance, type


def encode(value, depth=0):
    """A JSON-able form of `value`: plain JSON for None, bools and str, a one-key dict else."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    d = depth + 1
    if value is None or value is True or value is False:
        return value
    if _isinstance(value, _int):
        return {"int": _int.__format__(value, "x")}  # hex: linear, and no 4300-digit limit
    if _isinstance(value, _float):
        return {"float": _float.__repr__(value)}
    if _isinstance(value, _complex):
        real, imag = _complex.real.__get__(value), _complex.imag.__get__(value)
        return {"complex": [_float.__repr__(real), _float.__repr__(imag)]}
    if _isinstance(value, _str):
        return _str.__str__(value)
    if _isinstance(value, (_bytes, _bytearray)):
        return {"bytes": _bytes(value).hex()}
    if _isinstance(value, _list):
        return {"list": [encode(v, d) for v in _list.__iter__(value)]}
    if _isinstance(value, _tuple):
        return {"tuple": [encode(v, d) for v in _tuple.__iter__(value)]}
    if _isinstance(value, _frozenset):
        return {"frozenset": [encode(v, d) for v in _frozenset.__iter__(value)]}
    if _isinstance(value, _set):
        return {"set": [encode(v, d) for v in _set.__iter__(value)]}
    if _isinstance(value, _dict):
        return {"dict": [[encode(k, d), encode(v, d)] for k, v in _dict.items(value)]}
    if _isinstance(value, _range):
        r = (value.start, value.stop, value.step)
        return {"range": [encode(_int(x)) for x in r]}
    return {"object": _type(value).__name__}


def loads(data, max_bytes):
    """Parse one frame's JSON (not yet decoded); ValueError if malformed or over `max_bytes`."""
    if len(data) > max_bytes:
        raise ValueLimit(f"payload of {len(data)} bytes is over the {max_bytes}-byte limit")
    try:
        return json.loads(data)
    except RecursionError:  # json's parser recurses once per level of nesting
        raise ValueLimit("payload nested too deeply") from None


class Decoder:
    """Decodes payloads within one budget of nodes and characters."""

    def __init__(self, max_nodes=MAX_NODES, max_chars=MAX_CHARS):
        self.nodes = max_nodes
        self.chars = max_chars

    def decode(self, obj, depth=0):
        self.nodes -= 1
        if self.nodes < 0:
            raise ValueLimit("too many values to judge")
        if depth > MAX_DEPTH:
            raise ValueLimit("value nested too deeply")
        if obj is None or obj is True or obj is False:
            return obj
        if type(obj) is str:
            return self._text(obj)
        if type(obj) is not dict or len(obj) != 1:
            raise ValueError("malformed value")
        ((tag, data),) = obj.items()
        d = depth + 1
        match tag:
            case "int":
                return int(self._text(data), 16)
            case "float":
                return float(self._text(data)[:64])
            case "complex":
                real, imag = self._items(data, 2)
                return complex(float(self._text(real)[:64]), float(self._text(imag)[:64]))
            case "bytes":
                return bytes.fromhex(self._text(data))
            case "list":
                return [self.decode(v, d) for v in self._items(data)]
            case "tuple":
                return tuple(self.decode(v, d) for v in self._items(data))
            case "set":
                return {self.decode(v, d) for v in self._items(data)}
            case "frozenset":
                return frozenset(self.decode(v, d) for v in self._items(data))
            case "dict":
                pairs = (self._items(p, 2) for p in self._items(data))
                return {self.decode(k, d): self.decode(v, d) for k, v in pairs}
            case "range":
                start, stop, step = (self.decode(v, d) for v in self._items(data, 3))
                if not all(type(x) is int for x in (start, stop, step)):
                    raise ValueError("malformed range")
                return range(start, stop, step)
            case "object":
                return Opaque(self._text(data)[:100])
        raise ValueError(f"unknown value tag {str(tag)[:40]!r}")

    def _text(self, v):
        if type(v) is not str:
            raise ValueError("malformed value")
        self.chars -= len(v)
        if self.chars < 0:
            raise ValueLimit("values too large to judge")
        return v

    def _items(self, v, n=None):
        if type(v) is not list or (n is not None and len(v) != n):
            raise ValueError("malformed value")
        return v


def decode(obj, **budget):
    """Decode one encoded value (see `encode`) with a fresh budget."""
    return Decoder(**budget).decode(obj)
