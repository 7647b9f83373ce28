"""Decoding the values a jail reports (see `encode` in `_harness.py`) into plain host objects.

Only built-in types come out; anything else the program returned is an `Opaque` that equals
nothing but itself. Malformed input (a forged record) raises `ValueError`.
"""

from __future__ import annotations

from typing import Any


class Opaque:
    """A value of a type the sandbox does not carry across, known only by its type name."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<{self.type_name} object>"

    def __bool__(self) -> bool:
        raise TypeError(f"the truth of a {self.type_name} object is not judged")


def decode(obj: Any) -> Any:
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if not isinstance(obj, dict) or len(obj) != 1:
        raise ValueError("malformed value")
    (tag, data), = obj.items()
    match tag:
        case "int":
            return int(_str(data))
        case "float":
            return float(_str(data))
        case "complex":
            real, imag = data
            return complex(float(_str(real)), float(_str(imag)))
        case "bytes":
            return bytes.fromhex(_str(data))
        case "list":
            return [decode(v) for v in _list(data)]
        case "tuple":
            return tuple(decode(v) for v in _list(data))
        case "set":
            return {decode(v) for v in _list(data)}
        case "frozenset":
            return frozenset(decode(v) for v in _list(data))
        case "dict":
            return {decode(k): decode(v) for k, v in _list(data)}
        case "range":
            start, stop, step = (v if type(v) is int else _bad() for v in _list(data))
            return range(start, stop, step)
        case "object":
            return Opaque(_str(data))
    raise ValueError(f"unknown value tag {tag!r}")


def _str(v: Any) -> str:
    return v if isinstance(v, str) else _bad()


def _list(v: Any) -> list:
    return v if isinstance(v, list) else _bad()


def _bad() -> Any:
    raise ValueError("malformed value")
