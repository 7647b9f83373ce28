import pytest

from sandbox.values import Opaque, decode


@pytest.mark.parametrize(("encoded", "value"), [
    (None, None), (True, True), ("s", "s"),
    ({"int": "12345678901234567890"}, 12345678901234567890),
    ({"float": "nan"}, "nan"), ({"float": "1.5"}, 1.5),
    ({"list": [{"int": "1"}, "a"]}, [1, "a"]),
    ({"tuple": [{"tuple": []}]}, ((),)),
    ({"set": [{"int": "1"}, {"int": "2"}]}, {1, 2}),
    ({"dict": [["k", {"list": []}]]}, {"k": []}),
    ({"bytes": "6869"}, b"hi"),
    ({"range": [0, 5, 2]}, range(0, 5, 2)),
])
def test_decode(encoded, value):
    decoded = decode(encoded)
    if value == "nan":
        assert decoded != decoded
    else:
        assert decoded == value and type(decoded) is type(value)


def test_opaque_objects_equal_nothing_and_have_no_truth():
    obj = decode({"object": "Yes"})
    assert isinstance(obj, Opaque) and obj != obj.type_name and obj != Opaque("Yes")
    with pytest.raises(TypeError):
        bool(obj)


@pytest.mark.parametrize("forged", [
    {"int": 5}, {"list": "x"}, {"nope": 1}, {"int": "1", "extra": 2}, 3, [1], {"range": ["a", 1, 1]},
    {"set": [{"list": []}]},
])
def test_forged_values_are_rejected(forged):
    with pytest.raises((ValueError, TypeError)):
        decode(forged)
