"""Requests that queue behind a model call are scored together, and each is answered as if alone.

The server's scoring thread (mlcore.serve.scorer) hands every waiting request to
Predictor.answer_many, which makes one model call for all of them; these tests hold it
to the contract that makes that safe: the same answer, the same errors, and no request
failed by another.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import CancelledError
from typing import Any, ClassVar

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_wine

from mlcore.data import CHURN_SPEC, infer_spec
from mlcore.model import ModelBundle
from mlcore.serve import Predictor, serve_in_thread
from mlcore.serve.payload import CSV, JSON, RequestError
from mlcore.serve.predictor import Answer, Payload
from mlcore.serve.scorer import Scorer
from mlcore.settings import TrainingSettings
from mlcore.train import train_model

pytestmark = pytest.mark.xdist_group("trained_model")

FEATURES = list(CHURN_SPEC.features)


def json_body(frame: pd.DataFrame) -> bytes:
    return frame.to_json(orient="records").encode()


def alone(predictor: Predictor, payload: Payload) -> Answer | Exception:
    try:
        return predictor.answer(payload.body, payload.content_type, payload.accept)
    except Exception as exc:
        return exc


def test_a_batch_gives_each_request_the_answer_it_gets_alone(
    trained_bundle: ModelBundle, churn_frame: pd.DataFrame
) -> None:
    predictor = Predictor(trained_bundle)
    rows = churn_frame[FEATURES]
    payloads = [
        Payload(json_body(rows.iloc[0:1]), JSON),
        Payload(rows.iloc[1:40].to_csv(header=False, index=False), CSV, CSV),
        Payload(json.dumps({"instances": rows.iloc[40:45].values.tolist()}), JSON, JSON),
        Payload(json_body(rows.iloc[45:46]), JSON, "text/csv"),
    ]
    assert predictor.answer_many(payloads) == [alone(predictor, p) for p in payloads]


@pytest.fixture(scope="module", params=["multiclass", "regression"])
def other_task(request: pytest.FixtureRequest) -> tuple[Predictor, pd.DataFrame]:
    """A linear model (BLAS, not trees) of another task on scikit-learn's bundled data."""
    loader, task, algorithm = {
        "multiclass": (load_wine, "classification", "logistic_regression"),
        "regression": (load_diabetes, "regression", "ridge"),
    }[request.param]
    data = loader()
    frame = pd.DataFrame(data.data[:, :6], columns=[f"m {i}" for i in range(6)])
    frame["grade"] = (frame["m 0"] > frame["m 0"].median()).map({True: "hi", False: "lo"})
    frame["outcome"] = data.target
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    spec = infer_spec(frame, target="outcome", task=task)  # type: ignore[arg-type]
    bundle = train_model(
        frame.iloc[:120], spec, TrainingSettings(algorithm=algorithm, hyperparameters={}, seed=1)
    )
    return Predictor(bundle), frame.iloc[120:][list(spec.features)].reset_index(drop=True)


def test_a_batch_gives_the_same_predictions_for_any_task_and_model(
    other_task: tuple[Predictor, pd.DataFrame],
) -> None:
    predictor, rows = other_task
    payloads = [Payload(json_body(rows.iloc[i : i + 3]), JSON) for i in range(0, 30, 3)]
    batched = predictor.answer_many(payloads)
    for payload, answer in zip(payloads, batched, strict=True):
        single = alone(predictor, payload)
        assert isinstance(answer, Answer) and isinstance(single, Answer)
        got = json.loads(answer.body)["predictions"]
        want = json.loads(single.body)["predictions"]
        # Row for row the same model arithmetic; BLAS may sum a matrix product in another
        # order than a vector product, so allow for the last bits of a float.
        assert len(got) == len(want) == 3
        for record, reference in zip(got, want, strict=True):
            assert record == pytest.approx(reference, rel=1e-12, abs=1e-12)


def test_a_bad_request_in_a_batch_gets_its_own_error_and_the_others_their_answers(
    trained_bundle: ModelBundle, churn_frame: pd.DataFrame
) -> None:
    predictor = Predictor(trained_bundle)
    rows = churn_frame[FEATURES].iloc[:6].reset_index(drop=True)
    bad_value = rows.iloc[2:5].astype(object).copy()
    bad_value.iloc[1, bad_value.columns.get_loc(CHURN_SPEC.numeric[0])] = "lots"
    payloads = [
        Payload(json_body(rows.iloc[0:2]), JSON),
        Payload(json_body(bad_value), JSON),
        Payload(b"a,b", "text/plain"),
        Payload(json_body(rows.iloc[5:6]), JSON, "image/png"),
        Payload(json_body(rows.iloc[5:6]), JSON),
    ]
    results = predictor.answer_many(payloads)
    assert [type(r).__name__ for r in results] == [
        "Answer",
        "RequestError",
        "RequestError",
        "RequestError",
        "Answer",
    ]
    errors = [r for r in results if isinstance(r, RequestError)]
    assert [e.status for e in errors] == [400, 415, 406]
    # Records are numbered within the request that sent them, not within the batch.
    assert "record 2: 'lots'" in errors[0].message
    assert results[0] == alone(predictor, payloads[0])
    assert results[4] == alone(predictor, payloads[4])


class ChokesOnAnUnseenCategory(Predictor):
    """A model that raises on one category value, as a pipeline with handle_unknown='error' does."""

    calls = 0

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        ChokesOnAnUnseenCategory.calls += 1
        if (features[CHURN_SPEC.categorical[0]] == "never seen").any():
            raise ValueError("Found unknown categories ['never seen']")
        return super().predict_frame(features)


def test_a_request_the_model_fails_on_fails_alone_in_its_batch(
    trained_bundle: ModelBundle, churn_frame: pd.DataFrame
) -> None:
    predictor = ChokesOnAnUnseenCategory(trained_bundle)
    rows = churn_frame[FEATURES].iloc[:3].reset_index(drop=True)
    unseen = rows.iloc[1:2].copy()
    unseen[CHURN_SPEC.categorical[0]] = "never seen"
    payloads = [Payload(json_body(rows.iloc[i : i + 1]), JSON) for i in (0, 2)]
    payloads.insert(1, Payload(json_body(unseen), JSON))
    results = predictor.answer_many(payloads)
    assert isinstance(results[1], ValueError)
    assert results[0] == alone(Predictor(trained_bundle), payloads[0])
    assert results[2] == alone(Predictor(trained_bundle), payloads[2])


class CountingPredictor(Predictor):
    """Counts model calls and the records in each, slowly enough for a queue to form."""

    batches: ClassVar[list[int]] = []

    def predict_frame(self, features: pd.DataFrame) -> pd.DataFrame:
        CountingPredictor.batches.append(len(features))
        time.sleep(0.1)
        return super().predict_frame(features)


def test_concurrent_requests_to_the_server_share_model_calls_and_get_their_own_answers(
    trained_bundle: ModelBundle, churn_frame: pd.DataFrame
) -> None:
    rows = churn_frame[FEATURES].iloc[:12].reset_index(drop=True)
    bodies = [json_body(rows.iloc[i : i + 1]) for i in range(12)]
    expected = [Predictor(trained_bundle).answer(b, JSON, None).body for b in bodies]
    CountingPredictor.batches = []
    answers: dict[int, httpx.Response] = {}
    with serve_in_thread(CountingPredictor(trained_bundle)) as base:

        def invoke(i: int) -> None:
            answers[i] = httpx.post(
                f"{base}/invocations", content=bodies[i], headers={"Content-Type": JSON}
            )

        callers = [threading.Thread(target=invoke, args=(i,)) for i in range(12)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
    assert [answers[i].status_code for i in range(12)] == [200] * 12
    assert [answers[i].text for i in range(12)] == expected
    assert sum(CountingPredictor.batches) == 12
    assert len(CountingPredictor.batches) < 12  # requests that waited were scored together


def test_a_lone_request_is_scored_at_once_not_held_for_a_batch() -> None:
    scorer: Scorer[int, int] = Scorer(lambda jobs: list(jobs), max_batch_size=100)
    try:
        began = time.monotonic()
        assert scorer.submit(7, size=1).result(timeout=5) == 7
        assert time.monotonic() - began < 0.5
    finally:
        scorer.shutdown()


def blocked_scorer(
    max_batch_size: int,
) -> tuple[Scorer[int, int], list[list[int]], threading.Event]:
    """A scorer whose first batch waits for the returned event, so later jobs queue up."""
    release = threading.Event()
    batches: list[list[int]] = []

    def score(jobs: Any) -> list[int]:
        if not batches:
            release.wait(5)
        batches.append(list(jobs))
        return [job * 10 for job in jobs]

    return Scorer(score, max_batch_size=max_batch_size), batches, release


def test_waiting_jobs_are_batched_within_the_size_budget_in_arrival_order() -> None:
    scorer, batches, release = blocked_scorer(max_batch_size=10)
    try:
        first = scorer.submit(0, size=1)
        time.sleep(0.1)  # the first batch is running and blocked
        sizes = {1: 4, 2: 4, 3: 4, 4: 30, 5: 1}
        futures = [scorer.submit(job, size=size) for job, size in sizes.items()]
        release.set()
        assert first.result(timeout=5) == 0
        assert [f.result(timeout=5) for f in futures] == [10, 20, 30, 40, 50]
    finally:
        scorer.shutdown()
    # 4 + 4 fit in 10, the third 4 does not; a job over the budget is scored alone.
    assert batches == [[0], [1, 2], [3], [4], [5]]


def test_a_job_cancelled_while_queued_is_never_scored() -> None:
    scorer, batches, release = blocked_scorer(max_batch_size=100)
    try:
        scorer.submit(0, size=1)
        time.sleep(0.1)
        cancelled = scorer.submit(1, size=1)
        kept = scorer.submit(2, size=1)
        assert cancelled.cancel()
        release.set()
        assert kept.result(timeout=5) == 20
    finally:
        scorer.shutdown()
    assert batches == [[0], [2]]


def test_a_batch_that_raises_fails_its_own_jobs_and_not_the_next() -> None:
    calls: list[list[int]] = []

    def score(jobs: Any) -> list[int]:
        calls.append(list(jobs))
        if 13 in jobs:
            raise RuntimeError("unlucky")
        return list(jobs)

    scorer: Scorer[int, int] = Scorer(score, max_batch_size=1)
    try:
        failed = scorer.submit(13, size=1)
        fine = scorer.submit(14, size=1)
        with pytest.raises(RuntimeError, match="unlucky"):
            failed.result(timeout=5)
        assert fine.result(timeout=5) == 14
    finally:
        scorer.shutdown()


def test_shutting_down_cancels_the_jobs_still_queued() -> None:
    scorer, _, release = blocked_scorer(max_batch_size=1)
    running = scorer.submit(0, size=1)
    time.sleep(0.1)
    queued = scorer.submit(1, size=1)
    scorer.shutdown(wait=False, cancel_futures=True)
    release.set()
    assert running.result(timeout=5) == 0
    with pytest.raises(CancelledError):
        queued.result(timeout=5)
    with pytest.raises(RuntimeError, match="shut down"):
        scorer.submit(2, size=1)
