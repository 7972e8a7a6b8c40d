"""The model card as one self-contained HTML page: inline CSS, the figures embedded as PNG.

Order of the page, for a reader deciding whether to use the model: what the model is,
whether the quality gate passed and why, the metrics with their intervals beside the
no-skill baseline, the figures, then slices, feature importance and the remaining
sections of the card. Nothing is fetched to view it, so it can be attached to a model
registry entry, an MLflow run or an e-mail as it is.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

from mlcore.errors import DataError

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1f2328;
max-width:1280px}h1{margin-bottom:.2rem}.muted{color:#57606a}
.gate{padding:1rem 1.2rem;border-radius:8px;margin:1rem 0}.passed{background:#dafbe1;
border:1px solid #4ac26b}.failed{background:#ffebe9;border:1px solid #ff8182}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}td,th{padding:.25rem .7rem;
border-bottom:1px solid #eaeef2;text-align:left}td.num{text-align:right;
font-variant-numeric:tabular-nums}tr.primary td{font-weight:600}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:1rem}
figure{margin:0;border:1px solid #d0d7de;border-radius:8px;padding:.6rem}
figure img{width:100%;height:auto;display:block}figcaption{font-size:.85rem;color:#57606a;
margin-top:.4rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}
dt{font-weight:600}dd{margin:0}
"""
_SECTIONS_AFTER = (
    ("intended_use", "Intended use"),
    ("factors", "Factors"),
    ("evaluation_data", "Evaluation data"),
    ("training_data", "Training data"),
    ("ethical_considerations", "Ethical considerations"),
)


def render_html(card: dict[str, Any], *, root: str | Path) -> str:
    """The page for ``card``; its figures are read from ``root`` (the evaluation folder).

    Raises
    ------
    DataError
        When a figure the card lists is not in ``root``: the page would silently lack it.
    """
    details = card["model_details"]
    metrics = card["metrics"]
    analyses = card["quantitative_analyses"]
    title = f"Model card: {details['name']}"
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='muted' id='summary'>{_e(_summary(card))}</p>",
        _gate(metrics["quality_gate"]),
        "<section id='performance'>",
        f"<h2>Performance on {card['evaluation_data']['rows']:,} evaluation rows</h2>",
        _metrics_table(analyses, metrics["primary_metric"]),
        f"<p class='muted'>Intervals: {_e(metrics['uncertainty']['description'])}. No-skill "
        f"baseline: {_e(metrics['no_skill_baseline'])}.</p>",
        "</section>",
        _figures(analyses["figures"], Path(root)),
        _slices(analyses["by_slice"], metrics["primary_metric"]),
        _importance(analyses["feature_importance"]),
        _caveats(card["caveats_and_recommendations"]),
    ]
    parts += [_definitions(card[key], heading, key) for key, heading in _SECTIONS_AFTER]
    parts.append(_definitions(details, "Model details", "model_details"))
    parts.append("</body></html>")
    return "\n".join(part for part in parts if part)


def _summary(card: dict[str, Any]) -> str:
    details, metrics = card["model_details"], card["metrics"]
    commit = details.get("git_commit") or "unknown commit"
    if details.get("git_dirty"):
        commit += " (uncommitted changes)"
    sha = str(details.get("model_sha256") or "").removeprefix("sha256:")[:12] or "unknown"
    return (
        f"{metrics['problem_type'].replace('_', ' ')} · {details.get('algorithm')} · trained "
        f"{details.get('created_at') or 'at an unknown time'} from {commit} · model sha256 {sha}"
    )


def _gate(gate: dict[str, Any]) -> str:
    verdict = "PASSED" if gate["passed"] else "FAILED"
    reasons = "".join(f"<li>{_e(reason)}</li>" for reason in gate["reasons"])
    return (
        f"<div id='gate' class='gate {'passed' if gate['passed'] else 'failed'}'>"
        f"<strong>Quality gate {verdict}</strong><ul>{reasons}</ul></div>"
    )


def _metrics_table(analyses: dict[str, Any], primary: str) -> str:
    confidence = analyses.get("confidence") or 0.95
    head = (
        f"<tr><th>metric</th><th>value</th><th>{confidence:.0%} interval</th>"
        "<th>no-skill baseline</th></tr>"
    )
    rows = []
    for name, entry in analyses["overall"].items():
        marker = " class='primary'" if name == primary else ""
        label = f"{name} (gate's primary metric)" if name == primary else name
        rows.append(
            f"<tr{marker}><td>{_e(label)}</td><td class='num'>{_number(entry['value'])}</td>"
            f"<td class='num'>{_interval(entry)}</td>"
            f"<td class='num'>{_number(entry.get('no_skill'))}</td></tr>"
        )
    return f"<table id='metrics'>{head}{''.join(rows)}</table>"


def _figures(figures: list[dict[str, str]], root: Path) -> str:
    if not figures:
        return ""
    cards = []
    for figure in figures:
        path = root / figure["path"]
        if not path.is_file():
            raise DataError(
                f"the model card lists the figure {figure['path']} but {path} does not exist; "
                "render the card from the evaluation folder that holds its figures"
            )
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        cards.append(
            f"<figure id='figure-{_e(figure['name'])}'>"
            f"<img src='data:image/png;base64,{encoded}' alt='{_e(figure['title'])}'>"
            f"<figcaption><strong>{_e(figure['title'])}.</strong> {_e(figure['caption'])}"
            "</figcaption></figure>"
        )
    return f"<section id='figures'><h2>Figures</h2><div class='figures'>{''.join(cards)}</div></section>"


def _slices(slices: dict[str, dict[str, dict[str, float]]], primary: str) -> str:
    if not slices:
        return ""
    tables = []
    for column, values in slices.items():
        rows = "".join(
            f"<tr><td>{_e(value)}</td><td class='num'>{int(entry['rows']):,}</td>"
            f"<td class='num'>{_number(entry.get(primary))}</td></tr>"
            for value, entry in values.items()
        )
        tables.append(
            f"<h3>By {_e(column)}</h3><table><tr><th>value</th><th>rows</th>"
            f"<th>{_e(primary)}</th></tr>{rows}</table>"
        )
    return (
        "<section id='slices'><h2>By slice</h2><p class='muted'>Slices under the minimum "
        f"size show their row count only.</p>{''.join(tables)}</section>"
    )


def _importance(importance: dict[str, Any]) -> str:
    if not importance["features"]:
        return ""
    rows = "".join(
        f"<tr><td>{_e(item['feature'])}</td><td class='num'>{_number(item['mean'])}</td>"
        f"<td class='num'>{_number(item['std'])}</td></tr>"
        for item in importance["features"]
    )
    return (
        "<section id='importance'><h2>Permutation feature importance</h2>"
        f"<p class='muted'>How much {_e(importance['metric'])} worsens when the feature is "
        f"shuffled ({importance['repeats']} repeats on {importance['rows']:,} rows).</p>"
        f"<table><tr><th>feature</th><th>mean</th><th>standard deviation</th></tr>{rows}"
        "</table></section>"
    )


def _caveats(caveats: list[str]) -> str:
    items = "".join(f"<li>{_e(item)}</li>" for item in caveats)
    return f"<section id='caveats'><h2>Caveats and recommendations</h2><ul>{items}</ul></section>"


def _definitions(body: dict[str, Any], heading: str, key: str) -> str:
    items = "".join(
        f"<dt>{_e(name.replace('_', ' '))}</dt><dd>{_e(_text(value))}</dd>"
        for name, value in body.items()
    )
    return f"<section id='{key}'><h2>{_e(heading)}</h2><dl>{items}</dl></section>"


def _interval(entry: dict[str, Any]) -> str:
    lower, upper = entry.get("lower"), entry.get("upper")
    if not _finite(lower) or not _finite(upper):
        return "n/a"
    return f"{lower:.4f} – {upper:.4f}"


def _number(value: Any) -> str:
    return f"{value:.4f}" if _finite(value) else "n/a"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value) or "none"
    if isinstance(value, float):
        return _number(value)
    return str(value)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
