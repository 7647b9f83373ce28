import json
import math

import pytest

from sandbox import values
from sandbox.values import Opaque, ValueLimit, decode, encode


@pytest.mark.parametrize("value", [
    None, True, False, "s", 0, -1, 12345678901234567890, pytest.param(10 ** 5000, id="10**5000"), 1.5, -0.0, math.inf, 2 + 3j,  # noqa: E501
    [1, "a"], ((),), {1, 2}, frozenset({"x"}), {"k": [], 3: (4,)}, b"hi", bytearray(b"yo"),
    range(0, 5, 2),
])  # fmt: skip
def test_round_trip_through_json(value):
    back = decode(json.loads(json.dumps(encode(value))))
    expected = bytes(value) if isinstance(value, bytearray) else value
    assert back == expected and type(back) is type(expected)


def test_ints_travel_in_hex_so_huge_ones_are_linear_and_exact():
    assert encode(255) == {"int": "ff"} and encode(-16) == {"int": "-10"}


def test_subclasses_are_read_through_their_base_type():
    class Liar(int):
        def __eq__(self, other):
            return True

        def __repr__(self):
            return "4"

        __hash__ = int.__hash__

    assert decode(encode(Liar(-1))) == -1


def test_nan_decodes_to_nan():
    assert math.isnan(decode({"float": "nan"}))


def test_opaque_objects_equal_nothing_and_have_no_truth():
    obj = decode(encode(object()))
    assert isinstance(obj, Opaque) and obj != obj.type_name and obj != Opaque("object")
    with pytest.raises(TypeError):
        bool(obj)


@pytest.mark.parametrize("forged", [
    {"int": 5}, {"list": "x"}, {"nope": 1}, {"int": "1", "extra": 2}, 3, [1], {"range": ["a", 1, 1]},
    {"set": [{"list": []}]}, {"int": "zz"}, {"dict": [[1]]},
])  # fmt: skip
def test_forged_values_are_rejected(forged):
    with pytest.raises((ValueError, TypeError)):
        decode(forged)


@pytest.mark.parametrize("encoded", [
    {"list": [None] * (values.MAX_NODES + 1)},
    {"list": ["x" * 1000] * (values.MAX_CHARS // 1000 + 1)},
    {"int": "f" * (values.MAX_CHARS + 1)},
    json.loads('{"list": [' * (values.MAX_DEPTH + 2) + "]}" * (values.MAX_DEPTH + 2)),
])  # fmt: skip
def test_decoding_stops_at_its_caps(encoded):
    with pytest.raises(ValueLimit):
        decode(encoded)


def test_loads_refuses_oversized_and_deeply_nested_payloads():
    with pytest.raises(ValueLimit):
        values.loads(b"[]" * 10, max_bytes=10)
    with pytest.raises(ValueLimit):
        values.loads(b"[" * 100_000 + b"]" * 100_000, max_bytes=1 << 20)
