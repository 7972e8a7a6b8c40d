"""Classifier-based (domain-classifier) drift: can a model tell current rows from reference rows?

Per-column tests miss changes in how features move together. The rows compared
are the engines' content-hash samples (``sketches.RowSample``), so every engine
and every partitioning of the same data gives the classifier the same rows in
the same order, hence the same AUC. A gradient-
boosted classifier is trained on half of a sample of reference (label 0) and
current (label 1) rows and scored on the other half; its AUC there is the
statistic: 0.5 when the windows are indistinguishable, 1.0 when every row
betrays its window.

Calibrated threshold: on held-out rows the AUC is the Mann-Whitney statistic
of the two windows' scores, and its p-value is a permutation p-value (the
window labels of the held-out rows shuffled 1,999 times; tied scores, common
with small training sets, need no approximation), exact in level whatever the
model learnt (beyond 2,000 held-out rows, the Mann-Whitney normal approximation with
its tie correction, accurate there). The AUC needed to reach significance at this sample size is
reported as ``null_threshold``. In a report the classifier is tested at half
the significance level (the share rule has the other half: ``verdict``). The
grade needs both that significance and the AUC bands (0.55 moderate, 0.6 major: a Gini coefficient, 2 * AUC - 1, of
0.1 and 0.2, PSI's numbers). When the classifier separates the windows, the
features that separate them are ranked by permutation importance (the AUC lost
when that feature is shuffled, on 1,000 of the held-out rows), among the 20
features with the largest split gain in the trees (a feature no tree splits on
loses nothing).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from mlcore.data import DatasetSpec
from mlcore.drift.results import TestResult
from mlcore.settings import DriftSettings

METHOD = "domain_classifier"
# HistGradientBoosting takes at most this many categories per feature; the rest become missing.
_MAX_CATEGORIES = 254
_TOP_FEATURES = 10
# The explanation: permutation importance of at most this many features (the trees' largest split
# gains), shuffled this many times on this many held-out rows.
_CANDIDATES = 2 * _TOP_FEATURES
_REPEATS = 2
_IMPORTANCE_ROWS = 1000
PERMUTATIONS = 1999
# Up to this many held-out rows the AUC's p-value is a permutation p-value.
_PERMUTATION_MAX_ROWS = 2000


def domain_classifier_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    spec: DatasetSpec,
    settings: DriftSettings,
    explain: bool = True,
) -> TestResult:
    """Grade how well a classifier separates ``current`` rows from ``reference`` rows; with
    ``explain``, rank the features that separate them when it does."""
    options = settings.domain_classifier
    bands, alpha = options.bands, settings.p_value_threshold
    features = [c for c in spec.features if c in reference.columns and c in current.columns]
    n_ref, n_cur = (
        min(reference.shape[0], options.max_rows),
        min(current.shape[0], options.max_rows),
    )
    short = [
        side for side, n in (("reference", n_ref), ("current", n_cur)) if n < settings.min_window
    ]
    if short or not features:
        why = (
            f"fewer than the minimum window of {settings.min_window} rows in the "
            f"{' and '.join(short)} sample"
            if short
            else "no feature is present on both sides"
        )
        return TestResult.insufficient(
            METHOD,
            bands=bands,
            alpha=alpha,
            parameters={"reference_size": n_ref, "current_size": n_cur},
            note=why,
        )
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    rows = pd.concat(
        [
            reference[features].sample(n=n_ref, random_state=options.seed),
            current[features].sample(n=n_cur, random_state=options.seed),
        ],
        ignore_index=True,
    )
    names, x, is_categorical = _encode(rows, spec)
    y = np.concatenate([np.zeros(n_ref, dtype=np.int64), np.ones(n_cur, dtype=np.int64)])
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.5, stratify=y, random_state=options.seed
    )
    # One OpenMP thread: the engines already run columns in parallel, and on a busy machine
    # OpenMP's spinning threads make a two-second fit take a minute.
    with threadpool_limits(limits=1, user_api="openmp"):
        model = HistGradientBoostingClassifier(
            max_iter=100,
            learning_rate=0.1,
            max_leaf_nodes=15,
            categorical_features=is_categorical,
            early_stopping=False,
            random_state=options.seed,
        ).fit(x_train, y_train)
        scores = model.predict_proba(x_test)[:, 1]
    test_current, test_reference = scores[y_test == 1], scores[y_test == 0]
    floor = 0.0
    if y_test.size <= _PERMUTATION_MAX_ROWS:
        auc, p_value = auc_permutation_test(scores, y_test == 1, seed=options.seed)
        floor = 1 / (1 + PERMUTATIONS)
    else:  # large held-out sets: the normal approximation (with its tie correction) is exact enough
        test = stats.mannwhitneyu(test_current, test_reference, alternative="greater")
        auc = float(test.statistic) / (test_current.size * test_reference.size)
        p_value = float(test.pvalue)
    parameters: dict[str, Any] = {
        "auc": auc,
        "gini": 2 * auc - 1,
        "null_threshold": _null_threshold(test_current.size, test_reference.size, alpha),
        "classifier": "HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=15)",
        "features": tuple(features),
        "train_rows": int(y_train.size),
        "test_rows": int(y_test.size),
        "reference_size": n_ref,
        "current_size": n_cur,
    }
    if explain and p_value < alpha:
        with threadpool_limits(limits=1, user_api="openmp"):
            parameters["separating_features"] = _separating_features(
                model, x_test, y_test, names, seed=options.seed
            )
    return TestResult.graded(
        METHOD,
        statistic=auc,
        p_value=p_value,
        bands=bands,
        alpha=alpha,
        significance_test="permutation (held-out AUC)",
        parameters=parameters,
        p_value_floor=floor,
    )


def auc_permutation_test(
    scores: np.ndarray, is_current: np.ndarray, *, seed: int = 0
) -> tuple[float, float]:
    """AUC of ``scores`` for telling current from reference rows, and its one-sided
    permutation p-value (labels shuffled; Besag and Clifford's sequential stop at 20 draws at
    least as extreme)."""
    ranks = stats.rankdata(scores)  # ties share their average rank
    n_current = int(is_current.sum())
    n_reference = is_current.size - n_current
    offset = n_current * (n_current + 1) / 2
    observed = float(ranks[is_current].sum()) - offset
    rng = np.random.default_rng(seed)
    at_least, drawn = 0, 0
    while drawn < PERMUTATIONS:
        size = min(100, PERMUTATIONS - drawn)
        picks = rng.permuted(np.tile(np.arange(ranks.size), (size, 1)), axis=1)[:, :n_current]
        simulated = ranks[picks].sum(axis=1) - offset
        at_least += int(np.count_nonzero(simulated >= observed - 1e-9))
        drawn += size
        if at_least >= 20:
            return observed / (n_current * n_reference), at_least / drawn
    return observed / (n_current * n_reference), (1 + at_least) / (1 + PERMUTATIONS)


def _encode(rows: pd.DataFrame, spec: DatasetSpec) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The features as one float array, categorical columns first, and which are categorical.

    Numbers as floats; a category as its position among the kept categories (the most frequent
    254) in sorted order, missing and the rest as NaN. This is what HistGradientBoosting's own
    pandas-categorical path feeds its trees (its ordinal encoder sorts the categories and puts
    categorical columns first), so the model is the same, without pandas' preprocessing on every
    prediction. Split statistics then index these columns in this order.
    """
    names = [c for c in rows.columns if c not in spec.numeric]
    names += [c for c in rows.columns if c in spec.numeric]
    x = np.empty((rows.shape[0], len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        values = rows[name]
        if name in spec.numeric:
            x[:, j] = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy()
            continue
        text = values.astype(object).where(values.notna(), None)
        frequent = list(text.value_counts().index[:_MAX_CATEGORIES])
        # The encoder inside HistGradientBoosting sorts categories; mixed types cannot be
        # sorted, and then any fixed order gives trees of the same power.
        with contextlib.suppress(TypeError):
            frequent.sort()
        codes = pd.Index(frequent, dtype=object).get_indexer(text).astype(np.float64)
        codes[codes < 0] = np.nan
        x[:, j] = codes
    is_categorical = np.array([name not in spec.numeric for name in names])
    return names, x, is_categorical


def _separating_features(
    model: Any, x: np.ndarray, y: np.ndarray, names: list[str], *, seed: int
) -> tuple[tuple[str, float], ...]:
    """The features that separate the windows, by permutation importance: the held-out AUC lost
    when the feature's values are shuffled (mean of _REPEATS shuffles of _IMPORTANCE_ROWS rows).

    A feature no tree splits on loses exactly nothing, so only the features the trees use are
    shuffled, and of those the _CANDIDATES with the largest total split gain: shuffling every
    feature cost more than the rest of a drift run.
    """
    gain = np.zeros(len(names))
    # HistGradientBoosting publishes no split statistics; its fitted trees (``_predictors``, one
    # per iteration for two classes) hold each split's feature and gain.
    for trees in model._predictors:
        for tree in trees:
            splits = tree.nodes[tree.nodes["is_leaf"] == 0]
            np.add.at(gain, splits["feature_idx"], splits["gain"])
    from sklearn.model_selection import train_test_split

    candidates = [int(j) for j in np.argsort(-gain, kind="stable")[:_CANDIDATES] if gain[j] > 0]
    if y.size > _IMPORTANCE_ROWS:  # both windows keep their share of the rows
        keep, _ = train_test_split(
            np.arange(y.size), train_size=_IMPORTANCE_ROWS, stratify=y, random_state=seed
        )
        x, y = x[keep], y[keep]
    is_current = y == 1
    rng = np.random.default_rng(seed)
    n = is_current.size
    observed = _auc(model.predict_proba(x)[:, 1][None, :], is_current)[0]
    importance = []
    for j in candidates:
        shuffled = np.tile(x, (_REPEATS, 1))
        for repeat in range(_REPEATS):
            shuffled[repeat * n : (repeat + 1) * n, j] = rng.permutation(x[:, j])
        scores = model.predict_proba(shuffled)[:, 1].reshape(_REPEATS, n)
        importance.append(observed - float(_auc(scores, is_current).mean()))
    ranked = sorted(zip(candidates, importance, strict=True), key=lambda jv: (-jv[1], jv[0]))
    return tuple((names[j], float(value)) for j, value in ranked[:_TOP_FEATURES] if value > 0)


def _auc(scores: np.ndarray, is_current: np.ndarray) -> np.ndarray:
    """AUC of each row of ``scores`` (Mann-Whitney, ties at half)."""
    ranks = stats.rankdata(scores, axis=1)
    n_current = int(is_current.sum())
    n_reference = is_current.size - n_current
    u = ranks[:, is_current].sum(axis=1) - n_current * (n_current + 1) / 2
    return np.asarray(u / (n_current * n_reference), dtype=np.float64)


def _null_threshold(n_current: int, n_reference: int, alpha: float) -> float:
    """The AUC the Mann-Whitney test needs for p < alpha at these sizes (normal approximation)."""
    spread = math.sqrt((n_current + n_reference + 1) / (12 * n_current * n_reference))
    return 0.5 + float(stats.norm.isf(alpha)) * spread
