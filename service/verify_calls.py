"""`POST /verify` as tickets: the programs go to the verify pool, the caller polls for verdicts.

Owns: opening a ticket (the Celery task that judges the programs, whose id is the ticket's,
with its owner kept in Redis beside it), reading one back for its owner, and the per-user cap
on tickets being judged at once (`RLVR_USER_MAX_VERIFY_CALLS`).

Why tickets: a call used to hold a web thread until its programs had run, so eight calls
with slow programs froze every thread of the API (issue 14). A ticket holds nothing on the
web side; its verdicts wait in the result backend (`result_expires`) until read.

Each user's open tickets are a Redis sorted set scored by their deadline (opened +
`RLVR_SYNC_VERIFY_TIMEOUT`): a ticket stops counting once its verdicts are in or its
deadline passed (then it is revoked, and reads as `timeout`).

Does not own: judging (`worker.tasks.verify_requests`), the HTTP shapes (`web.api`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from celery.result import AsyncResult

from service import queues
from service.queues import Services

KEEP_SECONDS = 600  # as the result backend keeps verdicts (`result_expires`)


class Busy(Exception):
    """The user has as many tickets being judged as they may."""

    def __init__(self, open_tickets: int):
        self.open_tickets = open_tickets
        super().__init__(open_tickets)


def _owner_key(ticket: str) -> str:
    return f"rlvr:verify-call:{ticket}"


def _open_key(user_id: int) -> str:
    return f"rlvr:verify-calls:{user_id}"


def open_ticket(services: Services, user_id: int, requests: list[dict]) -> str:
    """Sends `requests` to the verify pool and returns the ticket; raises `Busy` at the cap.
    The count and the new ticket are one step under a per-user lock, so calls that race
    cannot pass the cap together."""
    settings, redis = services.settings, services.redis
    ticket = str(uuid.uuid4())
    deadline = time.time() + settings.sync_verify_timeout
    with redis.lock(f"{_open_key(user_id)}:lock", timeout=10, blocking_timeout=10):
        still_open = _still_open(services, user_id)
        if still_open >= settings.user_max_verify_calls:
            raise Busy(still_open)
        with redis.pipeline() as pipe:
            pipe.set(_owner_key(ticket), f"{user_id}:{deadline:.3f}", ex=KEEP_SECONDS)
            pipe.zadd(_open_key(user_id), {ticket: deadline})
            pipe.expire(_open_key(user_id), KEEP_SECONDS)
            pipe.execute()
    queues.send_requests(services, requests, task_id=ticket)
    return ticket


def _still_open(services: Services, user_id: int) -> int:
    """The user's tickets still being judged, after dropping those done or past their deadline."""
    redis, key = services.redis, _open_key(user_id)
    for ticket in redis.zrangebyscore(key, "-inf", time.time()):
        AsyncResult(ticket.decode(), app=services.celery).revoke()
    redis.zremrangebyscore(key, "-inf", time.time())
    tickets = [t.decode() for t in redis.zrange(key, 0, -1)]
    done = [t for t in tickets if AsyncResult(t, app=services.celery).ready()]
    if done:
        redis.zrem(key, *done)
    return len(tickets) - len(done)


def read_ticket(services: Services, user_id: int, ticket: str) -> dict[str, Any] | None:
    """`{id, status: pending | done | failed | timeout, verdicts}` of the user's ticket; None when it is not
    theirs, unknown or expired (the API's 404, the same words either way)."""
    owner = services.redis.get(_owner_key(ticket))
    if owner is None:
        return None
    owner_id, _, deadline = owner.decode().partition(":")
    if int(owner_id) != user_id:
        return None
    result = AsyncResult(ticket, app=services.celery)
    if result.successful():
        return {"id": ticket, "status": "done", "verdicts": result.get(timeout=1)}
    if result.failed():
        return {"id": ticket, "status": "failed", "verdicts": None}
    if time.time() > float(deadline):
        result.revoke()
        return {"id": ticket, "status": "timeout", "verdicts": None}
    return {"id": ticket, "status": "pending", "verdicts": None}
