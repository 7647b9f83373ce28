"""Data files through the API: upload (body or multipart), the size cap, JSON Lines checks,
list, read, delete; each user sees only their own (an admin all)."""

from __future__ import annotations

import io

import pytest

from service.settings import load_settings
from web import create_app

ROWS = b'{"prompt": "1+1", "answer": "2"}\n\n{"prompt": "2+2", "answer": "4"}\n'


def upload(api, content: bytes = ROWS, **kw):
    return api.post(
        "/files", data=content, content_type=kw.pop("content_type", "application/jsonl"), **kw
    )


def test_upload_as_a_body_or_a_multipart_part(api, stack_settings):
    body = upload(api, query_string={"name": "sums.jsonl"})
    assert body.status_code == 201, body.json
    assert {k: body.json[k] for k in ("name", "rows", "size_bytes")} == {
        "name": "sums.jsonl",
        "rows": 2,
        "size_bytes": len(ROWS),
    }
    assert body.json["ref"] == f"file:{body.json['id']}" and body.headers["Location"].endswith(
        f"/files/{body.json['id']}"
    )
    part = api.post(
        "/files",
        data={"file": (io.BytesIO(ROWS), "from-disk.jsonl")},
        content_type="multipart/form-data",
    )
    assert (part.status_code, part.json["name"], part.json["rows"]) == (201, "from-disk.jsonl", 2)
    assert [f["id"] for f in api.get("/files").json["files"]] == [part.json["id"], body.json["id"]]
    assert api.get(f"/files/{part.json['id']}").json == part.json
    stored = next((stack_settings.data_dir / "files").glob(f"*/{part.json['id']}.jsonl"))
    assert stored.read_bytes() == ROWS and stored.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"prompt": "1"}\n[1, 2]\n', "line 2 is not a JSON object"),
        (b'{"prompt": "1"}\n{nope\n', "line 2 is not JSON"),
        (b"\xff\xfe", "not UTF-8 text"),
        (b"\n\n", "the file has no rows"),
    ],
)
def test_anything_but_json_lines_is_a_400(api, content, message):
    response = upload(api, content)
    assert response.status_code == 400 and response.json["detail"][0]["field"] == "body"
    assert response.json["detail"][0]["message"].startswith(message)


def test_an_upload_over_the_cap_is_a_413(stack_env):
    app = create_app(load_settings({**stack_env, "RLVR_MAX_FILE_BYTES": "2048"}), TESTING=True)
    from service.db import accounts

    with app.extensions["rlvr"].db.begin() as s:
        token = accounts.issue_token(s, accounts.create_user(s, "big-uploader").id)
    headers = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    line = b'{"prompt": "' + b"x" * 100 + b'"}\n'
    assert (
        client.post(
            "/api/v1/files", data=line * 10, headers=headers, content_type="application/jsonl"
        ).status_code
        == 201
    )
    too_big = client.post(
        "/api/v1/files", data=line * 30, headers=headers, content_type="application/jsonl"
    )
    assert (too_big.status_code, too_big.json["error"]) == (413, "request entity too large")
    app.extensions["rlvr"].db.dispose()


def test_files_are_their_owners(api, as_user, stack_settings):
    mine = upload(api).json
    other = as_user()
    assert other.get(f"/files/{mine['id']}").status_code == 404
    assert other.delete(f"/files/{mine['id']}").status_code == 404
    assert mine["id"] not in [f["id"] for f in other.get("/files").json["files"]]
    assert as_user(admin=True).get(f"/files/{mine['id']}").status_code == 200
    assert api.delete(f"/files/{mine['id']}").status_code == 204
    assert api.get(f"/files/{mine['id']}").status_code == 404
    assert not list((stack_settings.data_dir / "files").glob(f"*/{mine['id']}.jsonl"))
