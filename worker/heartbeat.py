"""A thread that keeps a running job's heartbeat fresh and notices a cancel request."""

from __future__ import annotations

import logging
import threading

from service.db import Database, jobs

log = logging.getLogger(__name__)


class Heartbeat:
    """`with Heartbeat(db, job_id, every) as hb:` beats until the block ends; `hb.cancelled`
    is set once someone asked the job to stop. A failed beat is logged and retried: the
    reaper, not this thread, decides when silence means death."""

    def __init__(self, db: Database, job_id: int, every: float):
        self.db, self.job_id, self.every = db, job_id, every
        self.cancelled = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with self.db.begin() as session:
                    status = jobs.beat(session, self.job_id)
            except Exception:
                log.exception("heartbeat of job %s failed", self.job_id)
                continue
            if status == "cancelling":
                self.cancelled.set()
