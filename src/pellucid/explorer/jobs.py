"""Jobs of the explorer: one worker thread computes one job at a time (a 2-core machine is not slowed further by
parallel attributions); jobs report progress, can be cancelled while queued or running, and results are cached by
their key (dataset, model, example, method, arguments, target, metrics)."""
from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from .compute import Cancelled, Progress

FINISHED = ("done", "error", "cancelled")


@dataclass
class Job:
    """One computation: ``status`` is ``queued``, ``running``, ``done``, ``error`` or ``cancelled``."""

    id: str
    key: str
    request: dict
    status: str = "queued"
    progress: Progress = field(default_factory=Progress)
    result: Any = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    seconds: float | None = None

    def summary(self) -> dict:
        p = self.progress
        frac = 1.0 if self.status == "done" else min(0.99, p.done_stages / max(1, p.total_stages))
        return {"id": self.id, "status": self.status, "error": self.error, "stage": p.stage,
                "progress": round(frac, 3), "rows_evaluated": p.rows, "seconds": self.seconds,
                "request": self.request}


class Worker:
    """A queue of jobs run by one daemon thread with ``execute(job) -> result``; keeps at most ``max_jobs``
    finished jobs (oldest dropped first, with their cache entries)."""

    def __init__(self, execute: Callable[[Job], Any], max_jobs: int = 256):
        self.execute = execute
        self.max_jobs = max_jobs
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.by_key: dict[str, str] = {}
        self._q: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, key: str, request: dict) -> tuple[Job, bool]:
        """The job for ``key``: the cached one if it is queued, running or done, else a new queued job.
        Returns ``(job, cached)``."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the explorer was stopped")
            jid = self.by_key.get(key)
            if jid is not None and jid in self.jobs and self.jobs[jid].status in ("queued", "running", "done"):
                return self.jobs[jid], True
            job = Job(f"j{next(self._ids)}", key, request)
            self.jobs[job.id] = job
            self.by_key[key] = job.id
            self._evict()
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="pellucid-explorer-worker", daemon=True)
                self._thread.start()
        self._q.put(job.id)
        return job, False

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        """Set the job's cancel flag (a queued job is skipped, a running one stops at its next model call)."""
        job = self.jobs.get(job_id)
        if job is not None and job.status not in FINISHED:
            job.progress.cancel.set()
            if job.status == "queued":
                job.status = "cancelled"
        return job

    def close(self, timeout: float = 10.0) -> None:
        """Cancel every job and stop the thread."""
        with self._lock:
            self._closed = True
            for j in self.jobs.values():
                if j.status not in FINISHED:
                    j.progress.cancel.set()
        self._q.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _evict(self) -> None:
        finished = [j for j in self.jobs.values() if j.status in FINISHED]
        while len(self.jobs) > self.max_jobs and finished:
            old = finished.pop(0)
            self.jobs.pop(old.id, None)
            if self.by_key.get(old.key) == old.id:
                self.by_key.pop(old.key)

    def _loop(self) -> None:
        while True:
            jid = self._q.get()
            if jid is None:
                return
            job = self.jobs.get(jid)
            if job is None or job.status != "queued" or job.progress.cancel.is_set():
                continue
            job.status = "running"
            t0 = time.perf_counter()
            try:
                job.result = self.execute(job)
                job.status = "done"
                job.progress.stage = "done"
            except Cancelled:
                job.status, job.progress.stage = "cancelled", "cancelled"
            except (ValueError, TypeError, RuntimeError, NotImplementedError, IndexError, KeyError) as e:
                job.status, job.error = "error", f"{type(e).__name__}: {e}"
            except Exception as e:  # noqa: BLE001 - a failing model must not kill the worker; no traceback leaks
                job.status, job.error = "error", f"{type(e).__name__}: {e}"
            if job.status == "error" and job.progress.cancel.is_set():
                job.status, job.error, job.progress.stage = "cancelled", None, "cancelled"
            job.seconds = round(time.perf_counter() - t0, 4)
