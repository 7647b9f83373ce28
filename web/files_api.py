"""Data files under /api/v1/files: what a user uploads for the jsonl task, which a spec then
names as `file:<id>` (never by a path). Upload, list, read and delete.

Each view authenticates, is documented by `web.openapi.operation` and calls `service.db.files`;
someone else's file is a 404, as someone else's job is.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, g, request, url_for
from pydantic import BaseModel, ConfigDict, Field

from service.db import files
from service.db.models import DataFile
from web.auth import token_required
from web.context import reader, services
from web.errors import ApiError
from web.openapi import operation
from web.replies import reply

bp = Blueprint("files_api", __name__, url_prefix="/api/v1")

JSONL_TYPES = ("application/jsonl", "application/x-ndjson", "application/json-lines", "text/plain")
UPLOAD_BODY = {
    "required": True,
    "content": {
        **{
            media: {"schema": {"type": "string", "contentMediaType": media}}
            for media in JSONL_TYPES
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "contentMediaType": "application/jsonl"}},
            }
        },
    },
}


class FileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    ref: str = Field(description="How a spec names it: the jsonl task's `path` or `test_path`.")
    name: str = Field(description="The upload's label; nothing on the server is named by it.")
    size_bytes: int
    rows: int = Field(description="JSON objects in the file.")
    sha256: str
    created_at: datetime

    @classmethod
    def of(cls, row) -> FileOut:
        return cls.model_validate(
            {
                **{name: getattr(row, name) for name in cls.model_fields if name != "ref"},
                "ref": f"file:{row.id}",
            }
        )


class FileList(BaseModel):
    files: list[FileOut]


class UploadQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(
        None,
        max_length=files.NAME_LENGTH,
        description="A label for the file; default: the multipart part's file name.",
    )


def file_or_404(file_id: int):
    row = files.find(reader(), g.user, file_id)
    if row is None:
        raise ApiError(404, "not found", f"no file {file_id}")
    return row


@bp.post("/files")
@token_required
@operation("files", {201: FileOut}, errors=[413], request_body=UPLOAD_BODY)
def upload_file(query: UploadQuery):
    """Upload a JSON Lines data file

    One JSON object per line (`{"prompt": ..., "answer": ...}` for the jsonl task), as the
    body (`Content-Type: application/jsonl`) or as the multipart part `file`; at most
    `RLVR_MAX_FILE_BYTES`. A spec names it by the reply's `ref`, `file:<id>`.
    """
    settings = services().settings
    request.max_content_length = settings.max_file_bytes  # this route's cap, not the API's
    part = request.files.get("file") if request.mimetype == "multipart/form-data" else None
    content = part.read() if part is not None else request.get_data()
    name = query.name or (part.filename if part is not None else None) or "upload.jsonl"
    try:
        with services().db.begin() as s:
            row = files.store(s, settings.data_dir, g.user.id, name, content)
    except files.BadUpload as exc:
        raise ApiError(400, "invalid request", [{"field": "body", "message": str(exc)}]) from None
    return reply(FileOut.of(row), 201, Location=url_for("files_api.get_file", file_id=row.id))


@bp.get("/files")
@token_required
@operation("files", {200: FileList})
def list_files():
    """Your data files, newest first (an admin's: everyone's)"""
    rows = reader().scalars(files.visible(g.user).order_by(DataFile.id.desc()))
    return reply(FileList(files=[FileOut.of(row) for row in rows]))


@bp.get("/files/<int:file_id>")
@token_required
@operation("files", {200: FileOut}, errors=[404])
def get_file(file_id: int):
    """One data file's label, size, rows and checksum"""
    return reply(FileOut.of(file_or_404(file_id)))


@bp.delete("/files/<int:file_id>")
@token_required
@operation("files", {204: (None, "Deleted")}, errors=[404])
def delete_file(file_id: int):
    """Delete a data file

    A queued job that names it fails when it starts, saying the file is gone.
    """
    with services().db.begin() as s:
        row = files.find(s, g.user, file_id)
        if row is None:
            raise ApiError(404, "not found", f"no file {file_id}")
        files.delete(s, services().settings.data_dir, row)
    return Response(status=204)
