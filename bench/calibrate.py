"""`make calibrate`: false-alarm and detection rates of the default drift rules, by sample size.

Not a test: it measures and prints a table (and saves it to bench/data/calibration.md and
.json). For each planted change and each n in {100, 1k, 10k, 100k, 1M} it draws fresh
reference and current samples of n rows (numeric values, or category counts, which is all
the categorical checks read), grades the column with mlcore's default DriftSettings through
the exact engine (the column's method plus its data-quality checks, exactly as
`mlcore drift` does), and counts how often the column grades major (what the dataset
verdict and retraining act on) and moderate-or-major (what alerts act on).

Rows:
* same distribution (A/A): a false alarm is any moderate or major grade; the stated rate
  is drift.p_value_threshold (5%) per column, shown with its 95% Wilson upper bound, and
  also run at 10M rows; heavy tails (Pareto, t(1.5)), outliers (0.1% at 1e6) and a long
  tail (60% one-off values) among them;
* planted changes at or above the bands: detection must never fall as n grows (a lognormal
  inflation, a shift seen past one 1e9 reference value, a long-tail column turning "UNKNOWN"
  among them);
* changes below the bands (too small to matter): should not be flagged, least of all at
  large n (100 categories with a true PSI of 0.034 among them);
* the dataset level: the domain classifier on two correlated features (A/A and a reversed
  correlation that leaves every column's own distribution unchanged), and the dataset grade
  of three unchanged features with the classifier on: the family of dataset decisions holds 5%;
* corrected reports: 40 columns with drift.correction bonferroni, unchanged (any column
  alerting is a false alarm, data-quality checks included) and with one categorical share
  moving from 40% to 90% (that column must be flagged);
* the sketch engine (streaming; Spark grades the same sketches) on heavy-tailed columns at
  2M rows: unchanged, or changed by far less than the bands, every column must grade none.

Usage: python bench/calibrate.py [--quick] [--max-n N] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

BENCH = Path(__file__).resolve().parent
SIZES = (100, 1_000, 10_000, 100_000, 1_000_000)
# Costly cases (many labels, many columns, a classifier per window) stop at 100k.
SMALLER_SIZES = SIZES[:4]
# Replicates per n: many where they are cheap and rates are uncertain, few at 1M where the
# outcome is settled (every rate there is 0% or 100%).
REPLICATES = {100: 1000, 1_000: 500, 10_000: 200, 100_000: 60, 1_000_000: 10}
QUICK_REPLICATES = {100: 200, 1_000: 100, 10_000: 40, 100_000: 10, 1_000_000: 4}
# Same-distribution rows get more replicates at large n, where each false alarm is rare, and a
# 10M-row run: the rules must hold the stated rate at every n from 100 to 10M.
AA_REPLICATES = {100_000: 200, 1_000_000: 40, 10_000_000: 4}
AA_ONLY_SIZES = (10_000_000,)
# The classifier samples at most drift.domain_classifier.max_rows a side and fits a model per
# replicate: fewer replicates (its rates settle at 0% and 100% from n = 1,000).
CLASSIFIER_SHARE = 0.3
CATEGORY_SHARES = np.array([0.4, 0.3, 0.2, 0.1])

Draw = Callable[[np.random.Generator, int], tuple[object, object]]


@dataclass(frozen=True)
class Change:
    name: str
    # "numeric", "categorical", "dataset" (the classifier), "features" (a report's grade),
    # "corrected" (40 columns, bonferroni) or "sketch" (the streaming engine, every column)
    kind: str
    group: str  # "aa", "real" or "small"
    draw: Draw
    sizes: tuple[int, ...] | None = None  # run at these n only (costly cases)


def _normal(rng: np.random.Generator, n: int, *, missing: float = 0.0) -> np.ndarray:
    values = rng.normal(size=n)
    values[rng.random(n) < missing] = np.nan
    return values


def _numeric(change: Callable[[np.random.Generator, int], np.ndarray]) -> Draw:
    def draw(rng: np.random.Generator, n: int) -> tuple[object, object]:
        return _normal(rng, n, missing=0.02), change(rng, n)

    return draw


def _sentinels(rng: np.random.Generator, n: int) -> np.ndarray:
    values = _normal(rng, n, missing=0.02)
    values[rng.random(n) < 0.10] = -999.0
    return values


def _counts(
    rng: np.random.Generator, n: int, shares: np.ndarray, *, missing: float = 0.02
) -> dict[str, int]:
    present = rng.binomial(n, 1 - missing)
    counts = rng.multinomial(present, shares / shares.sum())
    table = {f"c{i}": int(c) for i, c in enumerate(counts) if c}
    table["__missing__"] = n - present
    return table


def _categorical(shares: np.ndarray, *, missing: float = 0.02, new: float = 0.0) -> Draw:
    def draw(rng: np.random.Generator, n: int) -> tuple[object, object]:
        reference = _counts(rng, n, CATEGORY_SHARES)
        current_shares = np.append(shares * (1 - new), new) if new else shares
        current = _counts(rng, n, current_shares, missing=missing)
        if new:
            current["new"] = current.pop(f"c{len(shares)}", 0)
        return reference, current

    return draw


def _uniform_200(rng: np.random.Generator, n: int) -> tuple[object, object]:
    shares = np.full(200, 1 / 200)
    return _counts(rng, n, shares), _counts(rng, n, shares)


def _correlated(rng: np.random.Generator, n: int, rho: float) -> pd.DataFrame:
    first = rng.normal(size=n)
    second = rho * first + math.sqrt(1 - rho**2) * rng.normal(size=n)
    return pd.DataFrame({"a": first, "b": second})


def _pairs(rho: float) -> Draw:
    def draw(rng: np.random.Generator, n: int) -> tuple[object, object]:
        return _correlated(rng, n, 0.8), _correlated(rng, n, rho)

    return draw


def _heavy(kind: str) -> Callable[[np.random.Generator, int], np.ndarray]:
    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        if kind == "pareto":
            return rng.pareto(1.0, n) + 1
        if kind == "t":
            return rng.standard_t(1.5, n)
        values = rng.normal(size=n)
        values[rng.random(n) < 0.001] = 1e6
        return values

    return draw


def _same(values: Callable[[np.random.Generator, int], np.ndarray]) -> Draw:
    def draw(rng: np.random.Generator, n: int) -> tuple[object, object]:
        return values(rng, n), values(rng, n)

    return draw


def _lognormal_inflation(rng: np.random.Generator, n: int) -> tuple[object, object]:
    return rng.lognormal(0, 2, n), 1.3 * rng.lognormal(0, 2, n)


def _shift_past_an_outlier(rng: np.random.Generator, n: int) -> tuple[object, object]:
    reference = rng.normal(size=n)
    reference[0] = 1e9
    return reference, rng.normal(1.0, size=n)


def _long_tail(rng: np.random.Generator, n: int) -> dict[str, int]:
    """40% of the values from 20 big cities, 60% from towns seen about once."""
    big = rng.binomial(n, 0.4)
    counts = {f"city{i}": int(c) for i, c in enumerate(rng.multinomial(big, np.full(20, 0.05)))}
    towns = rng.integers(0, 10**9, n - big)
    labels, repeats = np.unique(towns, return_counts=True)
    counts.update({f"town{t}": int(c) for t, c in zip(labels, repeats, strict=True)})
    return counts


def _long_tail_unknown(rng: np.random.Generator, n: int) -> tuple[object, object]:
    return _long_tail(rng, n), {"UNKNOWN": n}


def _below_band_100(rng: np.random.Generator, n: int) -> tuple[object, object]:
    base = np.full(100, 0.01)
    moved = base * (1 + 0.184 * np.where(np.arange(100) % 2 == 0, 1.0, -1.0))  # PSI 0.034
    return _counts(rng, n, base, missing=0.0), _counts(rng, n, moved, missing=0.0)


def _three_features(rng: np.random.Generator, n: int) -> tuple[object, object]:
    def frame() -> pd.DataFrame:
        return pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])

    return frame(), frame()


def _forty_columns(changed: bool) -> Draw:
    def draw(rng: np.random.Generator, n: int) -> tuple[object, object]:
        reference = [("numeric", _normal(rng, n)) for _ in range(20)]
        reference += [("categorical", _counts(rng, n, CATEGORY_SHARES)) for _ in range(20)]
        current = [("numeric", _normal(rng, n)) for _ in range(20)]
        current += [("categorical", _counts(rng, n, CATEGORY_SHARES)) for _ in range(20)]
        if changed:
            current[20] = ("categorical", _counts(rng, n, np.array([0.9, 0.05, 0.03, 0.02])))
        return reference, current

    return draw


def _heavy_sketch(planted: bool) -> Draw:
    def draw(rng: np.random.Generator, n: int) -> tuple[object, object]:
        def frame() -> pd.DataFrame:
            return pd.DataFrame({k: _heavy(k)(rng, n) for k in ("pareto", "t", "outliers")})

        reference, current = frame(), frame()
        if planted:  # real, far too small to matter
            current.loc[rng.random(n) < 0.003, "pareto"] = 1.0
            current["t"] += 0.02
        return reference, current

    return draw


CHANGES = (
    Change(
        "numeric, same distribution",
        "numeric",
        "aa",
        _numeric(lambda r, n: _normal(r, n, missing=0.02)),
    ),
    Change(
        "categorical (4), same distribution", "categorical", "aa", _categorical(CATEGORY_SHARES)
    ),
    Change("categorical (200), same distribution", "categorical", "aa", _uniform_200),
    Change(
        "mean shift +0.2 SD",
        "numeric",
        "real",
        _numeric(lambda r, n: _normal(r, n, missing=0.02) + 0.2),
    ),
    Change(
        "spread x1.5", "numeric", "real", _numeric(lambda r, n: _normal(r, n, missing=0.02) * 1.5)
    ),
    Change("sentinel share 10% (-999)", "numeric", "real", _numeric(_sentinels)),
    Change(
        "missing rate 2% -> 10% (numeric)",
        "numeric",
        "real",
        _numeric(lambda r, n: _normal(r, n, missing=0.10)),
    ),
    Change(
        "category share 40% -> 70%",
        "categorical",
        "real",
        _categorical(np.array([0.7, 0.15, 0.1, 0.05])),
    ),
    Change("new category at 10%", "categorical", "real", _categorical(CATEGORY_SHARES, new=0.10)),
    Change(
        "missing rate 2% -> 10% (categorical)",
        "categorical",
        "real",
        _categorical(CATEGORY_SHARES, missing=0.10),
    ),
    Change(
        "mean shift +0.02 SD",
        "numeric",
        "small",
        _numeric(lambda r, n: _normal(r, n, missing=0.02) + 0.02),
    ),
    Change(
        "category share 40.0% -> 40.5%",
        "categorical",
        "small",
        _categorical(np.array([0.405, 0.2975, 0.1983, 0.0992])),
    ),
    Change("domain classifier, same distribution", "dataset", "aa", _pairs(0.8)),
    Change("domain classifier, correlation 0.8 -> -0.8", "dataset", "real", _pairs(-0.8)),
    Change(
        "Pareto (alpha 1), same distribution",
        "numeric",
        "aa",
        _same(_heavy("pareto")),
        sizes=SMALLER_SIZES,
    ),
    Change("t(1.5), same distribution", "numeric", "aa", _same(_heavy("t")), sizes=SMALLER_SIZES),
    Change(
        "0.1% outliers at 1e6, same distribution",
        "numeric",
        "aa",
        _same(_heavy("o")),
        sizes=SMALLER_SIZES,
    ),
    Change(
        "long tail (60% one-off values), same distribution",
        "categorical",
        "aa",
        lambda rng, n: (_long_tail(rng, n), _long_tail(rng, n)),
        sizes=SMALLER_SIZES,
    ),
    Change(
        "dataset grade, 3 features + classifier, same distribution",
        "features",
        "aa",
        _three_features,
        sizes=SMALLER_SIZES,
    ),
    Change(
        "40 columns, bonferroni, same distribution (any column)",
        "corrected",
        "aa",
        _forty_columns(False),
        sizes=(100, 1_000, 10_000),
    ),
    Change(
        "sketch engine, Pareto / t(1.5) / outliers, same distribution",
        "sketch",
        "aa",
        _heavy_sketch(False),
        sizes=(2_000_000,),
    ),
    Change("lognormal amounts x1.3 (sigma 2)", "numeric", "real", _lognormal_inflation),
    Change(
        "+1 SD shift, one 1e9 value in the reference", "numeric", "real", _shift_past_an_outlier
    ),
    Change(
        "long tail, every value turns UNKNOWN",
        "categorical",
        "real",
        _long_tail_unknown,
        sizes=SMALLER_SIZES,
    ),
    Change(
        "40 columns, bonferroni, one share 40% -> 90%",
        "corrected",
        "real",
        _forty_columns(True),
        sizes=(100, 1_000, 10_000),
    ),
    Change(
        "100 categories, true PSI 0.034",
        "categorical",
        "small",
        _below_band_100,
    ),
    Change(
        "sketch engine, heavy tails, 0.3% pile at the Pareto minimum, t(1.5) +0.02",
        "sketch",
        "small",
        _heavy_sketch(True),
        sizes=(2_000_000,),
    ),
)


def _grade(change: Change, reference: object, current: object) -> str:
    from mlcore.data import DatasetSpec
    from mlcore.drift.classifier import domain_classifier_drift
    from mlcore.drift.detect import compare_summaries, detect_drift
    from mlcore.drift.summaries import NumericSummary
    from mlcore.drift.verdict import assemble_report
    from mlcore.settings import DriftSettings

    settings = DriftSettings()
    if change.kind == "features":
        assert isinstance(reference, pd.DataFrame) and isinstance(current, pd.DataFrame)
        spec = DatasetSpec(target="y", numeric=("a", "b", "c"))
        return detect_drift(reference.assign(y=0), current, spec=spec, settings=settings).grade
    if change.kind == "sketch":
        return _sketch_grade(reference, current)
    if change.kind == "corrected":
        corrected = DriftSettings(correction="bonferroni", domain_classifier={"enabled": False})
        columns = {}
        for i, ((kind, ref), (_, cur)) in enumerate(zip(reference, current, strict=True)):  # type: ignore[call-overload]
            if kind == "numeric":
                pair = (NumericSummary.from_values(ref), NumericSummary.from_values(cur))
            else:
                pair = (_categorical_summary(ref), _categorical_summary(cur))
            columns[f"x{i}"] = compare_summaries(
                *pair,
                name=f"x{i}",
                role="feature",
                settings=corrected,  # type: ignore[arg-type]
            )
        report = assemble_report(
            reference_rows=1, current_rows=1, settings=corrected, results=columns
        )
        if change.group == "aa":  # any column alerting is a false alarm
            alerting = [f.grade for f in report.features if f.alerting]
            return max(alerting, key=("moderate", "major").index, default="none")
        return report.feature("x20").grade
    if change.kind == "dataset":
        spec = DatasetSpec(target="y", numeric=("a", "b"))
        assert isinstance(reference, pd.DataFrame) and isinstance(current, pd.DataFrame)
        return domain_classifier_drift(
            reference, current, spec=spec, settings=settings, explain=False
        ).grade
    if change.kind == "numeric":
        ref, cur = NumericSummary.from_values(reference), NumericSummary.from_values(current)  # type: ignore[arg-type]
    else:
        ref, cur = (_categorical_summary(c) for c in (reference, current))  # type: ignore[arg-type]
    return compare_summaries(ref, cur, name="x", role="feature", settings=settings).grade


def _sketch_grade(reference: object, current: object) -> str:
    """The worst column grade of the streaming engine (chunks of 100,000 rows)."""
    from mlcore.data import DatasetSpec
    from mlcore.drift.baseline import build_baseline
    from mlcore.drift.streaming import detect_drift_streaming
    from mlcore.settings import DriftSettings

    assert isinstance(reference, pd.DataFrame) and isinstance(current, pd.DataFrame)
    settings = DriftSettings(domain_classifier={"enabled": False})
    spec = DatasetSpec(target="y", numeric=tuple(reference.columns))
    baseline = build_baseline(reference.assign(y=0), spec, settings)
    chunks = (current.iloc[i : i + 100_000] for i in range(0, len(current), 100_000))
    report = detect_drift_streaming(baseline, chunks, settings=settings)
    grades = [f.grade for f in report.features]
    return max(grades, key=("none", "insufficient_data", "moderate", "major").index)


def _categorical_summary(counts: dict[str, int]) -> object:
    from mlcore.drift.summaries import CategoricalSummary

    table = dict(counts)
    missing = table.pop("__missing__", 0)
    return CategoricalSummary.from_counts(table, n_missing=missing)


def run_cell(args: tuple[int, int, int]) -> dict[str, object]:
    index, n, replicates = args
    change = CHANGES[index]
    rng = np.random.default_rng([index, n])
    grades = [_grade(change, *change.draw(rng, n)) for _ in range(replicates)]
    return {
        "change": change.name,
        "n": n,
        "replicates": replicates,
        "major": sum(g == "major" for g in grades) / replicates,
        "alert": sum(g in ("major", "moderate") for g in grades) / replicates,
        "insufficient": sum(g == "insufficient_data" for g in grades) / replicates,
    }


def _replicates(change: Change, n: int, base: int, *, quick: bool) -> int:
    if change.kind in ("dataset", "features"):
        return max(10, int(base * CLASSIFIER_SHARE))
    if change.kind == "corrected":
        return max(10, base // 4)
    if change.kind == "sketch":
        return 4 if quick else 10
    if change.group == "aa" and not quick:
        return max(base, AA_REPLICATES.get(n, 0))
    return base


def wilson_bounds(rate: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a rate observed over ``n`` replicates."""
    centre = rate + z * z / (2 * n)
    spread = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)


def render(
    cells: list[dict[str, object]], sizes: tuple[int, ...], aa_sizes: tuple[int, ...] = ()
) -> tuple[str, list[str]]:
    by = {(c["change"], c["n"]): c for c in cells}
    header = "| planted change | " + " | ".join(f"n={n:,}" for n in sizes) + " |"
    rule = "|---|" + "---:|" * len(sizes)
    sections = {
        "aa": "Same distribution: false alarms (moderate or major; 95% upper bound)",
        "real": "Real changes: detection, major (moderate or major)",
        "small": "Changes below the bands: flagged moderate or major",
    }
    lines: list[str] = []
    problems: list[str] = []
    for group, title in sections.items():
        lines += ["", f"**{title}**", "", header, rule]
        for change in (c for c in CHANGES if c.group == group and c.kind != "sketch"):
            cells_of = [by.get((change.name, n)) for n in sizes]
            row = [c for c in cells_of if c is not None]
            if group == "aa":
                texts = [
                    f"{c['alert']:.1%} (<= {wilson_bounds(float(c['alert']), int(c['replicates']))[1]:.1%})"
                    + (f", {c['insufficient']:.0%} insuff." if c["insufficient"] else "")
                    for c in row
                ]
                # A problem when the rate is significantly above 5%, not when noise lifts it.
                problems += [
                    f"{change.name} at n={c['n']}: false alarms {c['alert']:.1%} > 5%"
                    for c in row
                    if wilson_bounds(float(c["alert"]), int(c["replicates"]))[0] > 0.05
                ]
            elif group == "real":
                texts = [f"{c['major']:.1%} ({c['alert']:.1%})" for c in row]
                majors = [float(c["major"]) for c in row]
                problems += [
                    f"{change.name}: detection falls from n={a['n']} to n={b['n']}"
                    for a, b, x, y in zip(row, row[1:], majors, majors[1:], strict=False)
                    if y < x
                ]
            else:
                texts = [f"{c['alert']:.1%}" for c in row]
                problems += [
                    f"{change.name} at n={c['n']}: flagged {c['alert']:.1%} > 5%"
                    for c in row
                    if wilson_bounds(float(c["alert"]), int(c["replicates"]))[0] > 0.05
                ]
            shown = iter(texts)
            texts = [next(shown) if c is not None else "-" for c in cells_of]
            lines.append(f"| {change.name} | " + " | ".join(texts) + " |")
    sketches = [c for c in CHANGES if c.kind == "sketch"]
    if any((c.name, n) in by for c in sketches for n in c.sizes or ()):
        lines += ["", "**Sketch engine (streaming; Spark grades the same sketches)**", ""]
        lines += ["| | n | any column moderate or major |", "|---|---:|---:|"]
        for change in sketches:
            for n in change.sizes or ():
                cell = by.get((change.name, n))
                if cell is None:
                    continue
                lines.append(
                    f"| {change.name} | {n:,} | {cell['alert']:.1%} of {cell['replicates']} |"
                )
                if wilson_bounds(float(cell["alert"]), int(cell["replicates"]))[0] > 0.05:
                    problems.append(f"{change.name} at n={n}: flagged {cell['alert']:.1%}")
    if aa_sizes:
        lines += ["", "**Same distribution at larger n: false alarms**", ""]
        lines += [
            "| | " + " | ".join(f"n={n:,}" for n in aa_sizes) + " |",
            "|---|" + "---:|" * len(aa_sizes),
        ]
        for change in (c for c in CHANGES if _runs_at_larger_n(c)):
            row = [by[(change.name, n)] for n in aa_sizes]
            texts = [f"{c['alert']:.1%} of {c['replicates']}" for c in row]
            lines.append(f"| {change.name} | " + " | ".join(texts) + " |")
            problems += [
                f"{change.name} at n={c['n']}: false alarms {c['alert']:.1%} > 5%"
                for c in row
                if wilson_bounds(float(c["alert"]), int(c["replicates"]))[0] > 0.05
            ]
    return "\n".join(lines), problems


def _runs_at_larger_n(change: Change) -> bool:
    return change.group == "aa" and change.kind in ("numeric", "categorical") and not change.sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer replicates (a smoke run)")
    parser.add_argument(
        "--max-n", type=int, default=max(AA_ONLY_SIZES), help="largest n to run (default 10M)"
    )
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    args = parser.parse_args()
    replicates = QUICK_REPLICATES if args.quick else REPLICATES
    sizes = tuple(n for n in SIZES if n <= args.max_n)
    jobs = [
        (i, n, _replicates(change, n, replicates.get(n, 10), quick=args.quick))
        for i, change in enumerate(CHANGES)
        for n in (change.sizes or sizes)
        if n <= args.max_n
    ]
    aa_sizes = tuple(n for n in AA_ONLY_SIZES if n <= args.max_n and not args.quick)
    jobs += [
        (i, n, AA_REPLICATES[n])
        for i, change in enumerate(CHANGES)
        if _runs_at_larger_n(change)
        for n in aa_sizes
    ]
    # Largest cells first, so the two processes finish together.
    jobs.sort(key=lambda job: -job[1] * job[2])
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        cells = list(pool.map(run_cell, jobs))
    seconds = time.perf_counter() - started
    table, problems = render(cells, sizes, aa_sizes)
    replicate_note = ", ".join(f"{replicates[n]} at n={n:,}" for n in sizes)
    aa_note = ", ".join(f"{r} at n={n:,}" for n, r in AA_REPLICATES.items() if n <= args.max_n)
    more = "" if args.quick else f"same-distribution rows at least {aa_note}; "
    text = (
        f"Default rules (DriftSettings()), exact engine; replicates per cell: {replicate_note} "
        f"({more}the domain classifier and the dataset-grade rows {CLASSIFIER_SHARE:.0%} of "
        f"those, at least 10; the corrected rows a quarter; the sketch rows "
        f"{4 if args.quick else 10}); {seconds:.0f} s on {args.workers} processes, load (1 min) "
        f"{load:.1f} at the start.\n"
        f"{table}\n"
    )
    print(text)
    out = BENCH / "data"
    out.mkdir(exist_ok=True)
    (out / "calibration.md").write_text(text)
    (out / "calibration.json").write_text(json.dumps(cells, indent=2) + "\n")
    if problems:
        print("CALIBRATION PROBLEMS:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("every false-alarm rate <= 5%; every detection rate non-decreasing in n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
