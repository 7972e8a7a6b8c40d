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
  also run at 10M rows;
* planted changes at or above the bands: detection must never fall as n grows;
* changes below the bands (too small to matter): should not be flagged, least of all at
  large n;
* the domain classifier (dataset level) on two correlated features: A/A and a reversed
  correlation that leaves every column's own distribution unchanged.

Usage: python bench/calibrate.py [--quick] [--max-n N] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import math
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
# Replicates per n: many where they are cheap and rates are uncertain, few at 1M where the
# outcome is settled (every rate there is 0% or 100%).
REPLICATES = {100: 1000, 1_000: 500, 10_000: 200, 100_000: 60, 1_000_000: 20}
QUICK_REPLICATES = {100: 200, 1_000: 100, 10_000: 40, 100_000: 10, 1_000_000: 4}
# Same-distribution rows get more replicates at large n, where each false alarm is rare, and a
# 10M-row run: the rules must hold the stated rate at every n from 100 to 10M.
AA_REPLICATES = {100_000: 200, 1_000_000: 60, 10_000_000: 10}
AA_ONLY_SIZES = (10_000_000,)
# The classifier samples at most drift.domain_classifier.max_rows a side and fits a model per
# replicate: fewer replicates (its rates settle at 0% and 100% from n = 1,000).
CLASSIFIER_SHARE = 0.3
CATEGORY_SHARES = np.array([0.4, 0.3, 0.2, 0.1])

Draw = Callable[[np.random.Generator, int], tuple[object, object]]


@dataclass(frozen=True)
class Change:
    name: str
    kind: str  # "numeric", "categorical" or "dataset"
    group: str  # "aa", "real" or "small"
    draw: Draw


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
)


def _grade(change: Change, reference: object, current: object) -> str:
    from mlcore.data import DatasetSpec
    from mlcore.drift.classifier import domain_classifier_drift
    from mlcore.drift.detect import compare_summaries
    from mlcore.drift.summaries import NumericSummary
    from mlcore.settings import DriftSettings

    settings = DriftSettings()
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
    if change.kind == "dataset":
        return max(10, int(base * CLASSIFIER_SHARE))
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
        for change in (c for c in CHANGES if c.group == group):
            row = [by[(change.name, n)] for n in sizes]
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
            lines.append(f"| {change.name} | " + " | ".join(texts) + " |")
    if aa_sizes:
        lines += ["", "**Same distribution at larger n: false alarms**", ""]
        lines += [
            "| | " + " | ".join(f"n={n:,}" for n in aa_sizes) + " |",
            "|---|" + "---:|" * len(aa_sizes),
        ]
        for change in (c for c in CHANGES if c.group == "aa" and c.kind != "dataset"):
            row = [by[(change.name, n)] for n in aa_sizes]
            texts = [f"{c['alert']:.1%} of {c['replicates']}" for c in row]
            lines.append(f"| {change.name} | " + " | ".join(texts) + " |")
            problems += [
                f"{change.name} at n={c['n']}: false alarms {c['alert']:.1%} > 5%"
                for c in row
                if wilson_bounds(float(c["alert"]), int(c["replicates"]))[0] > 0.05
            ]
    return "\n".join(lines), problems


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
        (i, n, _replicates(CHANGES[i], n, replicates[n], quick=args.quick))
        for i in range(len(CHANGES))
        for n in sizes
    ]
    aa_sizes = tuple(n for n in AA_ONLY_SIZES if n <= args.max_n and not args.quick)
    jobs += [
        (i, n, AA_REPLICATES[n])
        for i, change in enumerate(CHANGES)
        if change.group == "aa" and change.kind != "dataset"
        for n in aa_sizes
    ]
    # Largest cells first, so the two processes finish together.
    jobs.sort(key=lambda job: -job[1] * job[2])
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        cells = list(pool.map(run_cell, jobs))
    seconds = time.perf_counter() - started
    table, problems = render(cells, sizes, aa_sizes)
    replicate_note = ", ".join(f"{replicates[n]} at n={n:,}" for n in sizes)
    aa_note = ", ".join(f"{r} at n={n:,}" for n, r in AA_REPLICATES.items())
    text = (
        f"Default rules (DriftSettings()), exact engine; replicates per cell: {replicate_note} "
        f"(same-distribution rows at least {aa_note}; the domain classifier "
        f"{CLASSIFIER_SHARE:.0%} of those); {seconds:.0f} s on {args.workers} processes.\n"
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
