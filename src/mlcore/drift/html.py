"""A self-contained HTML drift report: one file, inline CSS and SVG, nothing fetched to view it.

Order of the page: the dataset grade, what the grades mean, then one card per
column, most severe grade first and then by drift score (PSI, computed for
every column on the same kind of bins, so scores compare across columns),
each with the reference-vs-current distribution and every check with its
grade.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence

from mlcore.drift.results import DriftReport, FeatureDrift, TestResult

_MAX_BARS = 20
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1f2328;
max-width:1100px}
h1{margin-bottom:.2rem}.muted{color:#57606a}.verdict{padding:1rem 1.2rem;border-radius:8px;
font-size:1.2rem;margin:1rem 0}.drift{background:#ffebe9;border:1px solid #ff8182}
.nodrift{background:#dafbe1;border:1px solid #4ac26b}.moderate{background:#fff8c5;
border:1px solid #d4a72c}.insufficient{background:#f6f8fa;border:1px solid #d0d7de}.card{border:1px solid #d0d7de;
border-radius:8px;padding:.8rem 1rem;margin:.8rem 0}.card h3{margin:.2rem 0}
.tag{display:inline-block;padding:.1rem .5rem;border-radius:1rem;font-size:.8rem;margin-left:.4rem}
.tag.red{background:#ffebe9;color:#82071e}.tag.green{background:#dafbe1;color:#116329}
.tag.amber{background:#fff8c5;color:#7d4e00}.tag.grey{background:#f6f8fa;color:#57606a}
table{border-collapse:collapse;font-size:.9rem}td,th{padding:.2rem .6rem;border-bottom:1px solid
#eaeef2;text-align:left}.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem}
"""


_VERDICT = {
    "major": ("drift", "Major dataset drift"),
    "moderate": ("moderate", "Moderate dataset drift (alert)"),
    "none": ("nodrift", "No dataset drift"),
    "insufficient_data": ("insufficient", "Insufficient data for a verdict"),
}
_TAG = {
    "major": "<span class='tag red'>major</span>",
    "moderate": "<span class='tag amber'>moderate</span>",
    "none": "<span class='tag green'>none</span>",
    "insufficient_data": "<span class='tag grey'>insufficient data</span>",
}
_SEVERITY = {"major": 0, "moderate": 1, "insufficient_data": 2, "none": 3}


def render_html(report: DriftReport) -> str:
    verdict_class, verdict = _VERDICT[report.grade]
    columns = sorted(report.columns, key=_sort_key)
    prediction = report.prediction_grade or "not checked"
    reference = report.reference
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Drift report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Drift report</h1>",
        f"<p class='muted'>{report.reference_rows:,} reference rows ({html.escape(reference.mode)}"
        f"{', ' + html.escape(reference.source) if reference.source else ''}) vs "
        f"{report.current_rows:,} current rows; engine: {report.mode}</p>",
        f"<div class='verdict {verdict_class}'><strong>{verdict}</strong>: "
        f"{len(report.drifted_features)} of {len(report.features)} features major, "
        f"{len(report.alerting_features)} moderate or major (the dataset grades at "
        f"{report.dataset_drift_share:.0%} of the graded features). Prediction drift: "
        f"{html.escape(prediction)}."
        + (f" {html.escape(report.note)}" if report.note else "")
        + "</div>",
        *(f"<p class='muted'>Warning: {html.escape(w)}</p>" for w in report.warnings),
        _classifier(report),
        _settings_table(report),
        "<h2>Reading the grades</h2><p>Each check measures an effect size and is graded only "
        "when a significance test rules out chance: <strong>major</strong> at or above its major "
        "threshold (the dataset verdict and retraining act on it), <strong>moderate</strong> at "
        "or above its moderate threshold (alerts act on it), <strong>none</strong> below, and "
        "<strong>insufficient data</strong> below the minimum window. PSI's thresholds are the "
        "usual 0.1 and 0.2; the other methods' are their documented equivalents.</p>",
        "<p class='legend'><span style='background:#8c959f'></span>reference"
        "<span style='background:#0969da'></span>current</p>",
    ]
    parts.extend(_card(column) for column in columns)
    parts.append("</body></html>")
    return "\n".join(parts)


def _classifier(report: DriftReport) -> str:
    result = report.domain_classifier
    if result is None:
        return ""
    separating = result.parameters.get("separating_features", ())
    listed = ", ".join(f"{html.escape(str(n))} ({v:.3f})" for n, v in list(separating)[:5])
    return (
        f"<div class='card'><h3>Domain classifier{_TAG[result.grade]}</h3>"
        f"<p class='muted'>{html.escape(result.explanation())}. Features that separate the "
        f"windows most (AUC lost when shuffled): {listed or 'none'}.</p></div>"
    )


def _sort_key(column: FeatureDrift) -> tuple[int, float]:
    psi = column.test("psi").statistic
    return (_SEVERITY[column.grade], -(psi if psi is not None else -1.0))


def _settings_table(report: DriftReport) -> str:
    settings = report.settings
    bands = settings["bands"]
    rows = [
        ("numeric method", settings["numeric_method"]),
        ("categorical method", settings["categorical_method"]),
        ("significance level per column", settings["p_value_threshold"]),
        ("minimum window", settings["min_window"]),
        *(
            (f"{name} moderate / major", f"{band['moderate']:g} / {band['major']:g}")
            for name, band in bands.items()
        ),
        ("multiple-testing correction", settings["correction"]),
    ]
    body = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{body}</table>"


def _card(column: FeatureDrift) -> str:
    tag = _TAG[column.grade]
    role = f" ({column.role})" if column.role != "feature" else ""
    reasons = "; ".join(column.reasons) or column.primary.explanation()
    return (
        f"<div class='card'><h3>{html.escape(column.name)}{role}{tag}</h3>"
        f"<p class='muted'>{column.kind}; decided by <strong>{column.method}</strong>: "
        f"{html.escape(reasons)}</p>"
        f"{_distribution_svg(column)}{_tests_table(column)}</div>"
    )


def _tests_table(column: FeatureDrift) -> str:
    rows = [_test_row(t, t.method == column.method) for t in (*column.tests, *column.checks)]
    head = (
        "<tr><th>check</th><th>effect size</th><th>p-value</th><th>moderate / major</th>"
        "<th>grade</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _test_row(test: TestResult, primary: bool) -> str:
    name = f"<strong>{test.method}</strong>" if primary else test.method
    statistic = "n/a" if test.statistic is None else f"{test.statistic:.4g}"
    p_value = "" if test.p_value is None else f"{test.p_value:.3g}"
    if test.p_value_adjusted is not None and test.p_value_adjusted != test.p_value:
        p_value += f" (adj. {test.p_value_adjusted:.3g})"
    note = f" <span class='muted'>{html.escape(test.note)}</span>" if test.note else ""
    return (
        f"<tr><td>{name}</td><td>{statistic}{note}</td><td>{p_value}</td>"
        f"<td>{test.bands.moderate:g} / {test.bands.major:g}</td><td>{_TAG[test.grade]}</td></tr>"
    )


def _distribution_svg(column: FeatureDrift) -> str:
    psi = column.test("psi")
    if psi.statistic is None:
        return "<p class='muted'>No distribution to plot: one side has no values.</p>"
    labels = _labels(psi)
    ref = [int(c) for c in psi.parameters["reference_counts"]]
    cur = [int(c) for c in psi.parameters["current_counts"]]
    if len(labels) > _MAX_BARS:  # keep the busiest categories, lump the rest
        order = sorted(range(len(labels)), key=lambda i: -(ref[i] + cur[i]))
        keep, rest = order[: _MAX_BARS - 1], order[_MAX_BARS - 1 :]
        labels = [labels[i] for i in keep] + [f"{len(rest)} others"]
        ref = [ref[i] for i in keep] + [sum(ref[i] for i in rest)]
        cur = [cur[i] for i in keep] + [sum(cur[i] for i in rest)]
    ref_share = _shares(ref)
    cur_share = _shares(cur)
    top = max([*ref_share, *cur_share, 1e-12])
    width, height, bar = 1000, 170, 1000 / max(len(labels), 1)
    shapes = []
    for i, label in enumerate(labels):
        x = i * bar
        for j, (share, colour) in enumerate(((ref_share[i], "#8c959f"), (cur_share[i], "#0969da"))):
            h = 120 * share / top
            shapes.append(
                f"<rect x='{x + 4 + j * (bar - 8) / 2:.1f}' y='{130 - h:.1f}' "
                f"width='{(bar - 8) / 2:.1f}' height='{h:.1f}' fill='{colour}'>"
                f"<title>{html.escape(label)}: {share:.2%}</title></rect>"
            )
        shapes.append(
            f"<text x='{x + bar / 2:.1f}' y='148' font-size='10' text-anchor='middle'>"
            f"{html.escape(_short(label))}</text>"
        )
    return (
        f"<svg viewBox='0 0 {width} {height}' width='100%' role='img' "
        f"aria-label='reference and current distribution of {html.escape(column.name)}'>"
        f"{''.join(shapes)}</svg>"
    )


def _labels(psi: TestResult) -> list[str]:
    if psi.parameters.get("bins") == "categories":
        return [str(x) for x in psi.parameters["labels"]]
    edges = [f"{e:.3g}" for e in psi.parameters["edges"]]
    bounds = ["-inf", *edges, "inf"]
    return [f"({lo}, {hi}]" for lo, hi in itertools.pairwise(bounds)]


def _shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def _short(label: str) -> str:
    return label if len(label) <= 16 else label[:15] + "…"
