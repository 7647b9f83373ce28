"""What the API takes in before a view sees it: path ids within the id column's range, and
JSON that every layer behind the edge can hold.

Owns the bounds that no model field states: a path id beyond the `integer` column is a
404 (Postgres would raise a DataError), and a JSON body is refused with a 400 naming the
field when it nests deeper than `MAX_DEPTH`, carries NUL (Postgres text and JSONB cannot
store it) or a lone surrogate (not Unicode: no encoder takes it), or a number JSON cannot
write back (`1e400` parses as infinity, and JSONB refuses NaN and infinity). Fields with
bounds of their own say them in their pydantic models, so the OpenAPI document shows them.
"""

from __future__ import annotations

import json
import math
from typing import Any

from werkzeug.routing import IntegerConverter

MAX_ID = 2**31 - 1
"""Job ids, steps and counters are Postgres `integer` columns."""
MAX_OFFSET = 2**63 - 1
"""OFFSET is a `bigint` on Postgres and an int64 on SQLite."""
MAX_DEPTH = 32
"""Of nested JSON objects and arrays: a spec nests about six deep; the JSON parser, pydantic
and the database's encoders recurse once per level, so a body 100,000 deep would overflow
the stack before any validation said no."""


class RowId(IntegerConverter):
    """`<int:job_id>` in every route: an id no row can have (0, or past MAX_ID, which the
    database would refuse with an error) becomes 0, which no row has, so the view answers 404.

    Refusing the match instead would be worse: werkzeug then answers 405 for a route that a
    rule with other methods shares (`DELETE /files/0` against `GET /files/<id>`)."""

    def to_python(self, value: str) -> int:
        number = int(value)
        return number if 1 <= number <= MAX_ID else 0


def loads(raw: bytes) -> Any:
    """`json.loads`, with nesting too deep for the parser's own recursion a ValueError."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None


def unstorable(data: Any, prefix: tuple = ()) -> dict | None:
    """The first value in `data` (parsed JSON) that no layer behind the API can hold, as a
    field error `{field, message}`; None when there is none. Iterative, so depth is cheap."""
    stack = [(prefix, data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict | list) and len(path) - len(prefix) >= MAX_DEPTH:
            return _error(path, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                if problem := _text_problem(key):
                    return _error(path, f"a key {problem}")
                stack.append(((*path, key), item))
        elif isinstance(value, list):
            stack.extend(((*path, index), item) for index, item in enumerate(value))
        elif isinstance(value, str):
            if problem := _text_problem(value):
                return _error(path, problem)
        elif isinstance(value, float) and not math.isfinite(value):
            return _error(path, "is not a finite number")
    return None


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains NUL (\\u0000), which cannot be stored"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (\\ud800-\\udfff), which is not Unicode"
    return None


def _error(path: tuple, message: str) -> dict:
    return {"field": ".".join(str(part) for part in path) or "body", "message": message}
