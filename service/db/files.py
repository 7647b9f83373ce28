"""Data files users upload for the jsonl task: a row in `files`, the bytes at
`<data dir>/files/<user id>/<file id>.jsonl`.

Owns: checking that an upload is JSON Lines (UTF-8, one object per line), storing it, finding
a user's file and deleting it. Nothing on disk is named by a user: the upload's name is a
label in the row, and the path is made of two ids. Does not own: who may name a file in a
spec (`service.tenancy`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from service.db.models import DataFile, User

NAME_LENGTH = 200


class BadUpload(ValueError):
    """The upload is not JSON Lines; the message says where."""


def count_rows(content: bytes) -> int:
    """Objects in a JSON Lines upload; blank lines are skipped.

    >>> count_rows(b'{"prompt": "1+1", "answer": "2"}\\n\\n{"prompt": "2+2", "answer": "4"}')
    2
    >>> count_rows(b'[1, 2]')
    Traceback (most recent call last):
    service.db.files.BadUpload: line 1 is not a JSON object
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadUpload(f"not UTF-8 text (byte {exc.start})") from None
    rows = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise BadUpload(f"line {number} is not JSON: {exc}") from None
        if not isinstance(row, dict):
            raise BadUpload(f"line {number} is not a JSON object")
        rows += 1
    if rows == 0:
        raise BadUpload("the file has no rows")
    return rows


def path(data_dir: Path, user_id: int, file_id: int) -> Path:
    return data_dir / "files" / str(user_id) / f"{file_id}.jsonl"


def store(session: Session, data_dir: Path, user_id: int, name: str, content: bytes) -> DataFile:
    """Checks and keeps an upload; its row is flushed, so it has an id, and commits with `session`."""
    row = DataFile(
        user_id=user_id,
        name=name[:NAME_LENGTH],
        size_bytes=len(content),
        rows=count_rows(content),
        sha256=hashlib.sha256(content).hexdigest(),
    )
    session.add(row)
    session.flush()
    target = path(data_dir, user_id, row.id)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    draft = target.with_suffix(".part")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(content)
    draft.replace(target)  # a reader never sees half a file
    return row


def visible(user: User) -> Select:
    """The files `user` may see and name: their own; an admin's: everyone's (as with jobs)."""
    query = select(DataFile)
    return query if user.is_admin else query.where(DataFile.user_id == user.id)


def find(session: Session, user: User, file_id: int) -> DataFile | None:
    return session.scalar(visible(user).where(DataFile.id == file_id))


def delete(session: Session, data_dir: Path, row: DataFile) -> None:
    session.delete(row)
    path(data_dir, row.user_id, row.id).unlink(missing_ok=True)
