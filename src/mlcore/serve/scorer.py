"""The one scoring thread of a server process, which scores waiting requests together.

A scikit-learn pipeline costs nearly as much to call on one row as on a hundred (the
ColumnTransformer's column selection and input checks dominate a small request), so
when several requests are waiting, the thread takes them all (up to a byte budget)
and the predictor scores them in one model call. Nothing ever waits for a batch to
fill: a request that arrives to an idle thread is scored at once, alone, so batching
costs nothing at low concurrency and grows only as far as a queue has formed anyway.

The thread is still the only place the model runs in the process: one scoring call at
a time, with OpenMP and BLAS held to one thread (see :mod:`mlcore.serve.app`).

:meth:`Scorer.submit` returns a :class:`concurrent.futures.Future`. Cancelling it
before the thread picks it up (as ``asyncio.wait_for`` does at the scoring deadline)
means it is never scored.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Job = TypeVar("Job")
Result = TypeVar("Result")


@dataclass
class _Pending(Generic[Job, Result]):
    job: Job
    size: int
    future: Future[Result] = field(default_factory=Future)


class Scorer(Generic[Job, Result]):
    """A single thread that runs ``score_batch`` on the jobs waiting for it.

    ``score_batch`` takes the jobs in arrival order and returns one result per job
    (a job's own failure belongs in its result; an exception out of ``score_batch``
    fails every job of that batch). A batch holds at least one job and, past the
    first, only jobs whose sizes keep its total within ``max_batch_size``.
    """

    def __init__(
        self,
        score_batch: Callable[[Sequence[Job]], Sequence[Result]],
        *,
        max_batch_size: int,
        initializer: Callable[[], None] | None = None,
        name: str = "mlcore-score",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be positive, got {max_batch_size}")
        self._score_batch = score_batch
        self._max_batch_size = max_batch_size
        self._initializer = initializer
        self._queue: queue.SimpleQueue[_Pending[Job, Result] | None] = queue.SimpleQueue()
        # A job taken off the queue that did not fit the batch before it starts the next one.
        self._held: _Pending[Job, Result] | None = None
        self._stopping = False
        self.batches = 0  # model calls made; tests and logs read it
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job, size: int) -> Future[Result]:
        """Queue a job of ``size`` (bytes, say) and return the future of its result."""
        if self._stopping:
            raise RuntimeError("the scorer has been shut down")
        pending: _Pending[Job, Result] = _Pending(job, size)
        self._queue.put(pending)
        return pending.future

    def shutdown(self, *, wait: bool = True, cancel_futures: bool = False) -> None:
        """Stop after the batch in progress; ``cancel_futures`` cancels the jobs still queued."""
        self._stopping = True
        if cancel_futures:
            while True:
                try:
                    pending = self._queue.get_nowait()
                except queue.Empty:
                    break
                if pending is not None:
                    pending.future.cancel()
        self._queue.put(None)
        if wait:
            self._thread.join()

    def _run(self) -> None:
        if self._initializer is not None:
            self._initializer()
        while (batch := self._next_batch()) is not None:
            if batch:
                self._score(batch)
        # Stopped: nothing queued behind the stop is ever scored, so say so to its callers.
        while True:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                return
            if pending is not None:
                pending.future.cancel()

    def _next_batch(self) -> list[_Pending[Job, Result]] | None:
        """Block for the first job, then take what is already waiting, within the budget.

        Returns None once shut down (after the batch in progress), and an empty list when
        every job taken had been cancelled while it waited.
        """
        candidate = self._held if self._held is not None else self._queue.get()
        self._held = None
        batch: list[_Pending[Job, Result]] = []
        total = 0
        while candidate is not None:
            if batch and total + candidate.size > self._max_batch_size:
                self._held = candidate  # it starts the next batch
                return batch
            if candidate.future.set_running_or_notify_cancel():  # False: cancelled while queued
                batch.append(candidate)
                total += candidate.size
            try:
                candidate = self._queue.get_nowait()
            except queue.Empty:
                return batch
        # The stop marker: score what was taken, then stop at the next call.
        self._queue.put(None)
        return batch if batch else None

    def _score(self, batch: list[_Pending[Job, Result]]) -> None:
        self.batches += 1
        try:
            results = self._score_batch([pending.job for pending in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)} jobs")
        except Exception as exc:  # every job of the batch must learn that it failed
            logger.exception("scoring a batch of %d request(s) failed", len(batch))
            for pending in batch:
                pending.future.set_exception(exc)
            return
        for pending, result in zip(batch, results, strict=True):
            pending.future.set_result(result)
