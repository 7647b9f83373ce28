"""An HTTP client of the job service's JSON API (/api/v1), for scripts and the `rlvr` CLI.

Owns: requests to the service, their errors as exceptions (`ApiError` with the service's
`{error, detail}`, `Unreachable` when no service answers), following a job as it runs, and
unpacking a downloaded model. Standard library only (urllib); imports nothing of the
service (no Flask, Celery or `web`), so it runs on any machine that can reach the API.
"""

from __future__ import annotations

import json
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000"
FINISHED = (
    "succeeded",
    "failed",
    "cancelled",
    "crashed",
)  # a job the service will not run again by itself
ENDING = ("cancelling", *FINISHED)


class ApiError(Exception):
    """The service answered with an error: `status`, and its `error` and `detail`."""

    def __init__(self, status: int, error: str, detail: Any = None):
        super().__init__(f"{status} {error}")
        self.status, self.error, self.detail = status, error, detail

    def bad_fields(self) -> list[tuple[str, str]]:
        """`(field path, message)` of a 400 that names fields, else empty."""
        if not isinstance(self.detail, list):
            return []
        return [
            (e.get("field", "?"), e.get("message", "")) for e in self.detail if isinstance(e, dict)
        ]


class Unreachable(Exception):
    """No service answered at the URL (refused, unknown host, timed out)."""


@dataclass
class Event:
    """A status change of a followed job."""

    at: str
    status: str
    message: str | None


@dataclass
class Step:
    """One step's metrics of a followed job, and the steps it will run in all."""

    step: int
    total: int
    metrics: dict[str, float]


class Client:
    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.base = self.url + "/api/v1"
        self.token, self.timeout = token, timeout

    def _open(self, method: str, path: str, query: dict | None = None, body: Any = None):
        query = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.base + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise _api_error(exc) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            why = getattr(reason, "strerror", None) or str(reason)
            raise Unreachable(f"cannot reach the rlvr service at {self.url} ({why})") from None

    def request(self, method: str, path: str, query: dict | None = None, body: Any = None) -> Any:
        with self._open(method, path, query, body) as response:
            return json.load(response)

    # ---- jobs ---------------------------------------------------------------------------

    def submit(self, kind: str, spec: dict) -> dict:
        return self.request("POST", "/jobs", body={"kind": kind, "spec": spec})

    def job(self, job_id: int) -> dict:
        return self.request("GET", f"/jobs/{job_id}")

    def events(self, job_id: int) -> list[dict]:
        return self.request("GET", f"/jobs/{job_id}/events")["events"]

    def metrics(
        self, job_id: int, names: list[str] | None = None, after: int | None = None
    ) -> dict:
        query = {"names": ",".join(names) if names else None, "after": after}
        return self.request("GET", f"/jobs/{job_id}/metrics", query)["series"]

    def cancel(self, job_id: int) -> dict:
        return self.request("POST", f"/jobs/{job_id}/cancel")

    def resume(self, job_id: int) -> dict:
        return self.request("POST", f"/jobs/{job_id}/resume")

    def clone(self, job_id: int, spec: dict | None = None) -> dict:
        return self.request("POST", f"/jobs/{job_id}/clone", body={"spec": spec or {}})

    def download(self, job_id: int, out_dir: str | Path) -> Path:
        """Fetches the job's final model (.tar.gz) and unpacks it into `out_dir`; returns
        the model's directory (`out_dir/job-<id>-model`)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with self._open("GET", f"/jobs/{job_id}/download") as response:
            with tarfile.open(fileobj=response, mode="r|gz") as archive:
                archive.extractall(out, filter="data")
        return out / f"job-{job_id}-model"

    def follow(
        self, job_id: int, names: list[str] | None = None, every: float = 1.0, wait: bool = True
    ) -> Iterator[Event | Step | dict]:
        """Yields the job's events and steps as they arrive, then the job itself (a dict)
        once it is finished, or after the first round without `wait`. Steps carry no time,
        so within one round the steps go after the events that start a run and before
        those that end one."""
        seen_events, last_step = 0, None
        while True:
            job = self.job(job_id)  # read first: the events and steps below cover its state
            events = [
                Event(e["at"], e["status"], e["message"]) for e in self.events(job_id)[seen_events:]
            ]
            seen_events += len(events)
            ending = next((i for i, e in enumerate(events) if e.status in ENDING), len(events))
            yield from events[:ending]
            by_step: dict[int, dict[str, float]] = {}
            for name, points in self.metrics(job_id, names, last_step).items():
                for step, value in points:
                    by_step.setdefault(step, {})[name] = value
            for step in sorted(by_step):
                yield Step(step, job["progress"]["total"], by_step[step])
                last_step = step
            yield from events[ending:]
            if job["status"] in FINISHED or not wait:
                yield job
                return
            time.sleep(every)


def _api_error(exc: urllib.error.HTTPError) -> ApiError:
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return ApiError(exc.code, body.get("error") or exc.reason, body.get("detail"))
