"""Reading verify requests from JSONL: the sandbox's own lines, or MBPP rows as published.

A line is either a `VerifyRequest` (`{"program": ..., "tests": {...}}`) or an MBPP row
(`{"task_id", "code", "test_list", "test_setup_code", ...}`), whose reference solution
becomes the program.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sandbox.models import FunctionTests, Limits, VerifyRequest


def from_mbpp(
    row: dict[str, Any], *, program: str | None = None, limits: Limits | None = None
) -> VerifyRequest:
    """The request that checks `program` (default: the row's reference code) against its tests."""
    return VerifyRequest(
        id=str(row["task_id"]),
        program=row["code"] if program is None else program,
        tests=FunctionTests(tests=list(row["test_list"]), setup=row.get("test_setup_code") or ""),
        limits=limits or Limits(),
    )


def read_requests(path: str | Path, *, limits: Limits | None = None) -> Iterator[VerifyRequest]:
    """Yield one request per non-blank line; raises ValueError naming the line on bad input."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if "test_list" in row and "code" in row:
                    yield from_mbpp(row, limits=limits)
                else:
                    request = VerifyRequest.model_validate(row)
                    yield request.model_copy(update={"limits": limits}) if limits else request
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
