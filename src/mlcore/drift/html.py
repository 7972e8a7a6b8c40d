"""A self-contained HTML drift report: one file, inline CSS and SVG, nothing fetched to view it.

Order of the page, as a person reads it (Evidently's layout): a header saying what was
compared (when the report was generated, the model's version and hash, the reference and
current windows, the engine), the dataset grade, a summary table of every column with the
worst grades first, what the grades mean and the settings, then one card per column in
the same order.

Each card shows the reference and current distributions on the same bins with an axis:
numeric columns as densities (share of rows per unit of the value) on the bins the drift
statistics use, so the reference keeps its shape instead of looking flat on its own
quantile bins; categorical columns as shares. Below it the deciding method's statistic
and the data-quality checks, each in its own words (an out-of-range check reads as the
share of values outside the reference's range against what chance gives, never as a
negative effect size). The other methods' statistics are listed only when asked for
(``all_statistics``); drift_report.json always holds them all.

This module lays out what :class:`~mlcore.drift.results.DriftReport` holds; it computes
no statistic of its own.
"""

from __future__ import annotations

import html
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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
#eaeef2;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem}
#header th{font-weight:600;padding-right:1.2rem}
"""
_REFERENCE_COLOUR = "#8c959f"
_CURRENT_COLOUR = "#0969da"

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
_REFERENCE_MODES = {
    "training": "the training baseline",
    "same_period_last_year": "the same period a year earlier",
    "previous_window": "the previous window",
    "data": "a reference table",
}


@dataclass(frozen=True)
class ReportContext:
    """What a report compared, beyond what the statistics need: shown in the page's header
    and written to drift_report.json under ``context``. Unknown values stay None and the
    header says they were not recorded."""

    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    model_version: str | None = None
    model_sha256: str | None = None
    current_window_start: str | None = None
    current_window_end: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "model_version": self.model_version,
            "model_sha256": self.model_sha256,
            "current_window_start": self.current_window_start,
            "current_window_end": self.current_window_end,
        }


def render_html(
    report: DriftReport, context: ReportContext | None = None, *, all_statistics: bool = False
) -> str:
    """The page for ``report``; ``all_statistics`` lists every method's statistic per column,
    not only the deciding one's."""
    context = context or ReportContext()
    verdict_class, verdict = _VERDICT[report.grade]
    columns = sorted(report.columns, key=_sort_key)
    prediction = report.prediction_grade or "not checked"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Drift report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Drift report</h1>",
        _header(report, context),
        f"<div id='verdict' class='verdict {verdict_class}'><strong>{verdict}</strong>: "
        f"{len(report.drifted_features)} of {len(report.features)} features major, "
        f"{len(report.alerting_features)} moderate or major (the dataset grades at "
        f"{report.dataset_drift_share:.0%} of the graded features). Prediction drift: "
        f"{html.escape(prediction)}."
        + (f" {html.escape(report.note)}" if report.note else "")
        + "</div>",
        *(f"<p class='muted'>Warning: {html.escape(w)}</p>" for w in report.warnings),
        _summary_table(columns),
        _classifier(report),
        "<h2>Reading the grades</h2><p>Each check measures an effect size and is graded only "
        "when a significance test rules out chance: <strong>major</strong> at or above its major "
        "threshold (the dataset verdict and retraining act on it), <strong>moderate</strong> at "
        "or above its moderate threshold (alerts act on it), <strong>none</strong> below, and "
        "<strong>insufficient data</strong> below the minimum window. PSI's thresholds are the "
        "usual 0.1 and 0.2; the other methods' are their documented equivalents.</p>",
        _settings_table(report),
        "<h2>Columns</h2>",
        f"<p class='legend'><span style='background:{_REFERENCE_COLOUR}'></span>reference"
        f"<span style='background:{_CURRENT_COLOUR}'></span>current. Numeric columns: density "
        "(share of rows per unit of the value) on the bins the statistics use; categorical "
        "columns: share of rows.</p>",
    ]
    parts.extend(_card(column, all_statistics=all_statistics) for column in columns)
    parts.append("</body></html>")
    return "\n".join(part for part in parts if part)


def _header(report: DriftReport, context: ReportContext) -> str:
    reference = report.reference
    model = "not recorded (the reference is a table, not a model's baseline)"
    if context.model_version or context.model_sha256:
        version = (
            f"version {context.model_version}" if context.model_version else "version not given"
        )
        digest = (context.model_sha256 or "").removeprefix("sha256:")
        model = f"{version} · sha256 {digest[:12] or 'not recorded'}"
    reference_text = (
        f"{_REFERENCE_MODES.get(reference.mode, reference.mode)}, {report.reference_rows:,} rows"
    )
    if reference.window_start or reference.window_end:
        reference_text += f", {_window(reference.window_start, reference.window_end)}"
    if reference.source:
        reference_text += f" (from {reference.source})"
    current_text = f"{report.current_rows:,} rows"
    if context.current_window_start or context.current_window_end:
        current_text += f", {_window(context.current_window_start, context.current_window_end)}"
    else:
        current_text += ", window not recorded (no event times)"
    engine: str = report.mode
    if report.ks_error_bound is not None:
        engine += f" (KS and Wasserstein within {report.ks_error_bound:.2g} of exact)"
    rows = [
        ("generated at", context.generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("model", model),
        ("reference", reference_text),
        ("current", current_text),
        ("engine", engine),
    ]
    body = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<table id='header'>{body}</table>"


def _window(start: str | None, end: str | None) -> str:
    return f"{start or '…'} to {end or '…'}"


def _summary_table(columns: Sequence[FeatureDrift]) -> str:
    head = (
        "<tr><th>column</th><th>role</th><th>type</th><th>grade</th><th>decided by</th>"
        "<th>statistic</th><th>moderate / major</th><th>p-value</th><th>data quality</th></tr>"
    )
    rows = []
    for column in columns:
        primary = column.primary
        statistic = "n/a" if primary.statistic is None else f"{primary.statistic:.4g}"
        quality = "; ".join(_check_summary(check) for check in column.checks if _flagged(check))
        rows.append(
            f"<tr><td><a href='#{_anchor(column.name)}'>{html.escape(column.name)}</a></td>"
            f"<td>{column.role}</td><td>{column.kind}</td><td>{_TAG[column.grade]}</td>"
            f"<td>{primary.method}</td><td class='num'>{statistic}</td>"
            f"<td class='num'>{primary.bands.moderate:g} / {primary.bands.major:g}</td>"
            f"<td class='num'>{_p_value(primary)}</td><td>{html.escape(quality or 'ok')}</td></tr>"
        )
    return (
        "<h2>Summary</h2><p class='muted'>Every column, the worst grades first.</p>"
        f"<table id='summary'>{head}{''.join(rows)}</table>"
    )


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


def _sort_key(column: FeatureDrift) -> tuple[int, float, str]:
    # Worst grade first; within a grade, the deciding statistic relative to its major
    # threshold, so columns decided by different methods compare.
    primary = column.primary
    relative = -1.0
    if primary.statistic is not None and primary.bands.major > 0:
        relative = primary.statistic / primary.bands.major
    return (_SEVERITY[column.grade], -relative, column.name)


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
    return f"<details><summary>Settings</summary><table id='settings'>{body}</table></details>"


def _card(column: FeatureDrift, *, all_statistics: bool) -> str:
    tag = _TAG[column.grade]
    role = f" ({column.role})" if column.role != "feature" else ""
    reasons = "; ".join(column.reasons) or column.primary.explanation()
    return (
        f"<div class='card' id='{_anchor(column.name)}'><h3>{html.escape(column.name)}{role}"
        f"{tag}</h3><p class='muted'>{column.kind}; decided by <strong>{column.method}</strong>: "
        f"{html.escape(reasons)}</p>"
        f"{_distribution_svg(column)}{_tests_table(column, all_statistics=all_statistics)}</div>"
    )


def _tests_table(column: FeatureDrift, *, all_statistics: bool) -> str:
    shown = list(column.tests) if all_statistics else [column.primary]
    rows = [_test_row(t, t.method == column.method) for t in shown]
    rows += [_check_row(check) for check in column.checks]
    head = (
        "<tr><th>check</th><th>measured</th><th>p-value</th><th>moderate / major</th>"
        "<th>grade</th></tr>"
    )
    return f"<table class='checks'>{head}{''.join(rows)}</table>"


def _test_row(test: TestResult, primary: bool) -> str:
    name = f"<strong>{test.method}</strong>" if primary else test.method
    statistic = "n/a" if test.statistic is None else f"{test.statistic:.4g}"
    note = f" <span class='muted'>{html.escape(test.note)}</span>" if test.note else ""
    return (
        f"<tr><td>{name}</td><td>{statistic}{note}</td><td class='num'>{_p_value(test)}</td>"
        f"<td class='num'>{test.bands.moderate:g} / {test.bands.major:g}</td><td>{_TAG[test.grade]}</td></tr>"
    )


def _check_row(check: TestResult) -> str:
    note = f" <span class='muted'>{html.escape(check.note)}</span>" if check.note else ""
    return (
        f"<tr><td>{check.method.replace('_', ' ')}</td><td>{html.escape(_check_text(check))}"
        f"{note}</td><td class='num'>{_p_value(check)}</td>"
        f"<td class='num'>{_check_bands(check)}</td><td>{_TAG[check.grade]}</td></tr>"
    )


def _check_text(check: TestResult) -> str:
    """A data-quality check in its own words, from the shares it records."""
    p = check.parameters
    if check.method == "out_of_range" and "share_outside" in p:
        below, above = p.get("below_reference_min", 0), p.get("above_reference_max", 0)
        return (
            f"{_percent(p['share_outside'])} of current values outside the reference's range "
            f"({below:,} below its minimum, {above:,} above its maximum); chance alone gives "
            f"{_percent(p['expected_share'])}"
        )
    if check.method == "unseen_values" and "unseen_share" in p:
        return (
            f"{_percent(p['unseen_share'])} of current values in {p.get('unseen_categories', 0):,} "
            f"categories the reference never had; chance alone gives {_percent(p['expected_share'])}"
        )
    if check.method == "missing_rate" and "current_rate" in p:
        return f"missing {_percent(p['reference_rate'])} in reference, {_percent(p['current_rate'])} now"
    if check.statistic is None:
        return "n/a"
    return f"{check.statistic:.4g}"


def _check_bands(check: TestResult) -> str:
    # The checks grade an excess in percentage points over the reference (or over chance).
    if check.method in ("out_of_range", "missing_rate", "unseen_values"):
        return f"+{_percent(check.bands.moderate)} / +{_percent(check.bands.major)}"
    return f"{check.bands.moderate:g} / {check.bands.major:g}"


def _check_summary(check: TestResult) -> str:
    p = check.parameters
    name = check.method.replace("_", " ")
    if check.method == "out_of_range" and "share_outside" in p:
        return (
            f"{name} ({check.grade}): {_percent(p['share_outside'])} outside the reference's range"
        )
    if check.method == "unseen_values" and "unseen_share" in p:
        return f"{name} ({check.grade}): {_percent(p['unseen_share'])} in unseen categories"
    if check.method == "missing_rate" and "current_rate" in p:
        return (
            f"{name} ({check.grade}): {_percent(p['reference_rate'])} to "
            f"{_percent(p['current_rate'])} missing"
        )
    return f"{name} ({check.grade})"


def _flagged(check: TestResult) -> bool:
    return check.grade in ("moderate", "major")


def _p_value(test: TestResult) -> str:
    text = "" if test.p_value is None else f"{test.p_value:.2g}"
    if test.p_value_adjusted is not None and test.p_value_adjusted != test.p_value:
        text += f" (adj. {test.p_value_adjusted:.2g})"
    return text


def _percent(share: float) -> str:
    return f"{100 * share:.2f}%" if share < 0.1 else f"{100 * share:.1f}%"


def _anchor(name: str) -> str:
    return "column-" + re.sub(r"[^A-Za-z0-9_-]", "_", name)


# --- distributions -------------------------------------------------------------------------

_WIDTH, _HEIGHT = 1000, 230
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 12, 46
_PLOT_W = _WIDTH - _LEFT - _RIGHT
_PLOT_H = _HEIGHT - _TOP - _BOTTOM


def _distribution_svg(column: FeatureDrift) -> str:
    psi = next((t for t in column.tests if t.method == "psi"), None)
    if psi is None or psi.statistic is None or "reference_counts" not in psi.parameters:
        return "<p class='muted'>No distribution to plot: one side has no values.</p>"
    ref = [int(c) for c in psi.parameters["reference_counts"]]
    cur = [int(c) for c in psi.parameters["current_counts"]]
    edges = [float(e) for e in psi.parameters.get("edges", ())]
    if psi.parameters.get("bins") != "categories" and len(edges) >= 2:
        low, high = _observed_range(column, edges)
        bounds = [low, *edges, high]
        if all(hi > lo for lo, hi in itertools.pairwise(bounds)):
            return _density_svg(column.name, edges, low, high, ref, cur)
        # A bin of zero width holds a single value (a point mass, as in counts with many
        # zeros): a density cannot show it, shares per bin can.
        labels = [_bin(bounds, i) for i in range(len(bounds) - 1)]
        return _shares_svg(column.name, labels, ref, cur)
    return _shares_svg(column.name, _labels(psi), ref, cur)


def _observed_range(column: FeatureDrift, edges: list[float]) -> tuple[float, float]:
    """The smallest and largest value either side holds: the outer bins' true bounds."""
    lows = [p.min for p in (column.reference_profile, column.current_profile) if p.min is not None]
    highs = [p.max for p in (column.reference_profile, column.current_profile) if p.max is not None]
    return min([*lows, edges[0]]), max([*highs, edges[-1]])


def _density_svg(
    name: str, edges: list[float], low: float, high: float, ref: list[int], cur: list[int]
) -> str:
    """Both sides as densities (share per unit) on the same bins, on one value axis.

    The outer bins reach the observed minimum and maximum. An outer bin wider than all the
    inner bins together (a far outlier) is drawn that wide with a break mark and its true
    bound as the tick: its density, computed from its true width, stays honest.
    """
    bounds = [low, *edges, high]
    widths = [hi - lo for lo, hi in itertools.pairwise(bounds)]
    span = edges[-1] - edges[0]
    drawn = list(widths)
    broken = [False] * len(widths)
    for i in (0, len(widths) - 1):
        if span > 0 and widths[i] > span:
            drawn[i], broken[i] = span, True
    ref_density = _densities(ref, widths)
    cur_density = _densities(cur, widths)
    top = max([*ref_density, *cur_density]) or 1.0
    total = sum(drawn) or 1.0
    xs = [0.0]
    for width in drawn:
        xs.append(xs[-1] + width)

    def x(position: float) -> float:
        return _LEFT + _PLOT_W * position / total

    def y(density: float) -> float:
        return _TOP + _PLOT_H * (1 - density / top)

    shapes = []
    for i in range(len(widths)):
        left, right = x(xs[i]), x(xs[i + 1])
        shapes.append(
            f"<rect x='{left:.1f}' y='{y(ref_density[i]):.1f}' width='{max(right - left, 0.5):.1f}' "
            f"height='{_TOP + _PLOT_H - y(ref_density[i]):.1f}' fill='{_REFERENCE_COLOUR}' "
            f"fill-opacity='0.55'><title>{html.escape(_bin(bounds, i))}: reference "
            f"{_share_text(ref, i)}</title></rect>"
        )
    # The current side as an outline over the reference, so neither hides the other.
    path = []
    for i in range(len(widths)):
        left, right, level = x(xs[i]), x(xs[i + 1]), y(cur_density[i])
        path.append(f"{'M' if i == 0 else 'L'}{left:.1f},{level:.1f} L{right:.1f},{level:.1f}")
    shapes.append(
        f"<path d='{' '.join(path)}' fill='none' stroke='{_CURRENT_COLOUR}' stroke-width='2.5'>"
        f"<title>current</title></path>"
    )
    for i in range(len(widths)):
        left, right = x(xs[i]), x(xs[i + 1])
        shapes.append(
            f"<rect x='{left:.1f}' y='{_TOP}' width='{max(right - left, 0.5):.1f}' "
            f"height='{_PLOT_H}' fill='transparent'><title>{html.escape(_bin(bounds, i))}: "
            f"reference {_share_text(ref, i)}, current {_share_text(cur, i)}</title></rect>"
        )
        if broken[i]:
            mid = (left + right) / 2
            shapes.append(
                f"<path d='M{mid - 6:.1f},{_TOP + _PLOT_H + 6} l6,-12 M{mid:.1f},"
                f"{_TOP + _PLOT_H + 6} l6,-12' stroke='#1f2328' stroke-width='1.5'/>"
            )
            # Spread over its true width the bin's mass is nearly invisible: say it in words.
            shapes.append(
                f"<text x='{mid:.1f}' y='{_TOP + 14}' font-size='11' text-anchor='middle'>"
                f"reference {_share_text(ref, i)}, current {_share_text(cur, i)}</text>"
            )
    ticks = _value_ticks(bounds, xs, x)
    return _svg(name, "density", top, shapes, ticks)


def _shares_svg(name: str, labels: list[str], ref: list[int], cur: list[int]) -> str:
    if len(labels) > _MAX_BARS:  # keep the busiest categories, lump the rest
        order = sorted(range(len(labels)), key=lambda i: -(ref[i] + cur[i]))
        keep, rest = order[: _MAX_BARS - 1], order[_MAX_BARS - 1 :]
        labels = [labels[i] for i in keep] + [f"{len(rest)} others"]
        ref = [ref[i] for i in keep] + [sum(ref[i] for i in rest)]
        cur = [cur[i] for i in keep] + [sum(cur[i] for i in rest)]
    ref_share, cur_share = _shares(ref), _shares(cur)
    top = max([*ref_share, *cur_share]) or 1.0
    bar = _PLOT_W / max(len(labels), 1)
    shapes, ticks = [], []
    for i, label in enumerate(labels):
        left = _LEFT + i * bar
        for j, (share, colour) in enumerate(
            ((ref_share[i], _REFERENCE_COLOUR), (cur_share[i], _CURRENT_COLOUR))
        ):
            height = _PLOT_H * share / top
            shapes.append(
                f"<rect x='{left + 4 + j * (bar - 8) / 2:.1f}' y='{_TOP + _PLOT_H - height:.1f}' "
                f"width='{(bar - 8) / 2:.1f}' height='{height:.1f}' fill='{colour}'>"
                f"<title>{html.escape(label)}: {'reference' if j == 0 else 'current'} "
                f"{share:.2%}</title></rect>"
            )
        ticks.append(
            f"<text x='{left + bar / 2:.1f}' y='{_TOP + _PLOT_H + 16}' font-size='11' "
            f"text-anchor='middle'>{html.escape(_short(label))}</text>"
        )
    return _svg(name, "share of rows", top, shapes, ticks, percent=True)


def _svg(
    name: str,
    y_label: str,
    top: float,
    shapes: list[str],
    x_ticks: list[str],
    *,
    percent: bool = False,
) -> str:
    axis = [
        f"<line x1='{_LEFT}' y1='{_TOP}' x2='{_LEFT}' y2='{_TOP + _PLOT_H}' stroke='#57606a'/>",
        f"<line x1='{_LEFT}' y1='{_TOP + _PLOT_H}' x2='{_LEFT + _PLOT_W}' y2='{_TOP + _PLOT_H}' "
        "stroke='#57606a'/>",
        f"<text x='14' y='{_TOP + _PLOT_H / 2:.1f}' font-size='11' text-anchor='middle' "
        f"transform='rotate(-90 14 {_TOP + _PLOT_H / 2:.1f})'>{y_label}</text>",
    ]
    for fraction in (0.0, 0.5, 1.0):
        level = _TOP + _PLOT_H * (1 - fraction)
        value = top * fraction
        text = f"{value:.0%}" if percent else f"{value:.3g}"
        axis.append(
            f"<line x1='{_LEFT - 4}' y1='{level:.1f}' x2='{_LEFT}' y2='{level:.1f}' "
            f"stroke='#57606a'/><text x='{_LEFT - 6}' y='{level + 4:.1f}' font-size='11' "
            f"text-anchor='end'>{text}</text>"
        )
    return (
        f"<svg class='distribution' viewBox='0 0 {_WIDTH} {_HEIGHT}' width='100%' role='img' "
        f"aria-label='reference and current distribution of {html.escape(name)}'>"
        f"{''.join(axis)}{''.join(shapes)}{''.join(x_ticks)}</svg>"
    )


def _value_ticks(bounds: list[float], xs: list[float], x: Any) -> list[str]:
    """Tick labels at bin bounds, thinned so that neighbours never overlap."""
    ticks: list[str] = []
    last = -math.inf
    for i, value in enumerate(bounds):
        position = x(xs[i])
        if position - last < 60 and i != len(bounds) - 1:
            continue
        if position - last < 60:  # always label the maximum; drop the previous label
            ticks.pop()
        ticks.append(
            f"<line x1='{position:.1f}' y1='{_TOP + _PLOT_H}' x2='{position:.1f}' "
            f"y2='{_TOP + _PLOT_H + 4}' stroke='#57606a'/><text x='{position:.1f}' "
            f"y='{_TOP + _PLOT_H + 18}' font-size='11' text-anchor='middle'>{value:.4g}</text>"
        )
        last = position
    return ticks


def _densities(counts: list[int], widths: list[float]) -> list[float]:
    total = sum(counts)
    return [c / total / w if total and w > 0 else 0.0 for c, w in zip(counts, widths, strict=True)]


def _bin(bounds: list[float], i: int) -> str:
    low, high = bounds[i], bounds[i + 1]
    if low == high:  # a bin holding one value
        return f"{low:.4g}"
    return f"[{low:.4g}, {high:.4g}]" if i == 0 else f"({low:.4g}, {high:.4g}]"


def _share_text(counts: list[int], i: int) -> str:
    total = sum(counts)
    return f"{counts[i] / total:.2%}" if total else "0%"


def _labels(psi: TestResult) -> list[str]:
    if psi.parameters.get("bins") == "categories":
        return [str(x) for x in psi.parameters["labels"]]
    edges = [f"{e:.3g}" for e in psi.parameters.get("edges", ())]
    bounds = ["-inf", *edges, "inf"]
    return [f"({lo}, {hi}]" for lo, hi in itertools.pairwise(bounds)]


def _shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def _short(label: str) -> str:
    return label if len(label) <= 16 else label[:15] + "…"
