"""Model cards with the sections of "Model Cards for Model Reporting" (Mitchell et al., 2019).

Every statement in the card is derived from the model's metadata, its evaluation
and its slices, so the card cannot drift from the model it describes. As the paper
lays them out, "Metrics" says how the model is measured (the measures, the decision
threshold and positive label, how uncertainty is estimated, the no-skill baseline) and
"Quantitative analyses" gives the results: overall with bootstrap intervals beside the
no-skill baseline, the confusion matrix, per slice, the permutation feature importance
and the evaluation's figures.

The card is written three ways from one dictionary: ``model_card.json`` (for tools),
``model_card.md`` (for a repository or a pull request) and ``model_card.html`` (one
self-contained page with the figures embedded, :mod:`mlcore.model_card_html`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlcore.evaluate import (
    IMPORTANCE_REPEATS,
    NO_SKILL_METHOD,
    FeatureImportance,
    MetricReport,
    uncertainty_statement,
)
from mlcore.figures import FigureFile
from mlcore.gate import GateDecision
from mlcore.jsonio import write_json
from mlcore.model import MODEL_SHA256_KEY, ModelBundle
from mlcore.problem import RULE_LEGACY, RULE_MINORITY

# Column names that often stand for protected or sensitive attributes; the card asks
# for a fairness review when a model uses one of them.
_SENSITIVE_HINTS = frozenset(
    {
        "age",
        "birth",
        "dob",
        "gender",
        "sex",
        "race",
        "ethnic",
        "ethnicity",
        "religion",
        "region",
        "postcode",
        "zip",
        "zipcode",
        "nationality",
        "marital",
        "disability",
        "disabled",
    }
)
# A spread of the primary metric across a slice column's values beyond this is called out.
_DISPARITY_WARNING = 0.05

SECTIONS = (
    "model_details",
    "intended_use",
    "factors",
    "metrics",
    "evaluation_data",
    "training_data",
    "quantitative_analyses",
    "ethical_considerations",
    "caveats_and_recommendations",
)


def build_model_card(
    bundle: ModelBundle,
    *,
    report: MetricReport,
    slices: dict[str, dict[str, dict[str, float]]],
    gate: GateDecision,
    evaluation_rows: int,
    evaluation_fingerprint: str,
    name: str = "model",
    figures: Sequence[FigureFile] = (),
    importance: Sequence[FeatureImportance] = (),
    importance_rows: int = 0,
) -> dict[str, Any]:
    spec, meta = bundle.spec, bundle.metadata
    problem = report.problem
    primary = gate.primary_metric
    sensitive = [f for f in spec.features if _looks_sensitive(f)]
    disparities: dict[str, float] = {}
    for column, values in slices.items():
        spread = _spread(values, primary)
        if spread is not None:
            disparities[column] = spread
    caveats = [
        "Performance was measured on held-out rows of the training data's period (the most "
        "recent ones when the split is time-ordered); it degrades when the input distribution or the feature-target relationship shifts. "
        "The drift and model-quality monitors watch for both.",
    ]
    caveats += [
        f"{primary} varies by {gap:.3f} across values of {column!r}: check the weakest slice before relying on the model there."
        for column, gap in disparities.items()
        if gap > _DISPARITY_WARNING
    ]
    if problem.positive_label_rule in (RULE_MINORITY, RULE_LEGACY):
        caveats.append(
            f"The positive label {problem.positive_label!r} was not declared ({problem.positive_label_rule}); "
            "set dataset.positive_label to state which class the model is meant to find."
        )
    if not gate.passed:
        caveats.insert(
            0,
            "The quality gate FAILED for this model: it must not be deployed. "
            + "; ".join(gate.reasons),
        )
    return {
        "model_details": {
            "name": name,
            "task": spec.task,
            "algorithm": meta.get("algorithm"),
            "hyperparameters": meta.get("hyperparameters"),
            "seed": meta.get("seed"),
            "git_commit": meta.get("git_commit"),
            # True: trained from uncommitted changes, so the commit alone does not rebuild it.
            "git_dirty": meta.get("git_dirty"),
            "created_at": meta.get("created_at"),
            "library_versions": meta.get("library_versions"),
            "model_sha256": meta.get(MODEL_SHA256_KEY),
        },
        "intended_use": {
            "primary_use": f"Predict {spec.target!r} ({spec.task}) from {len(spec.features)} tabular features "
            "for the population the training data represents.",
            "out_of_scope": "Decisions about individuals without human review; populations or periods "
            "unlike the training data (see caveats).",
        },
        "factors": {
            "slice_columns": list(slices),
            "features_needing_fairness_review": sensitive,
        },
        "metrics": {
            "problem_type": problem.problem_type,
            "performance_measures": list(report.metrics),
            "primary_metric": primary,
            **_label_statement(problem.to_dict()),
            "uncertainty": uncertainty_statement(report),
            "no_skill_baseline": NO_SKILL_METHOD,
            "quality_gate": gate.to_dict(),
        },
        "evaluation_data": {"rows": evaluation_rows, "fingerprint": evaluation_fingerprint},
        "training_data": {
            "rows": meta.get("training_rows"),
            "fingerprint": meta.get("data_fingerprint"),
            "target": spec.target,
            "numeric_features": list(spec.numeric),
            "categorical_features": list(spec.categorical),
        },
        "quantitative_analyses": {
            "overall": {
                name: {
                    "value": value,
                    "lower": report.intervals[name].lower,
                    "upper": report.intervals[name].upper,
                    "standard_error": report.intervals[name].standard_error,
                    "no_skill": report.no_skill.get(name),
                }
                for name, value in report.metrics.items()
            },
            "confidence": report.confidence,
            "confusion_matrix": report.confusion_matrix,
            "by_slice": slices,
            "feature_importance": {
                "metric": primary,
                "rows": importance_rows,
                "repeats": IMPORTANCE_REPEATS,
                "features": [
                    {"feature": item.feature, "mean": item.mean, "std": item.std}
                    for item in sorted(importance, key=lambda item: -item.mean)
                ],
            },
            "figures": [figure.to_dict() for figure in figures],
        },
        "ethical_considerations": {
            "sensitive_features": sensitive,
            "largest_slice_disparities": disparities,
            "statement": (
                f"The model uses {sensitive} which may proxy for protected attributes; review slice metrics "
                "and the legal basis for using them."
                if sensitive
                else "No feature name suggests a protected attribute; proxies may still exist."
            ),
        },
        "caveats_and_recommendations": caveats,
    }


def _label_statement(problem: dict[str, Any]) -> dict[str, Any]:
    """How predictions become labels: the classes and, for binary models, the positive label,
    why it is the positive one, and the probability at which a row is called positive."""
    return {k: v for k, v in problem.items() if k != "problem_type"}


def _looks_sensitive(column: str) -> bool:
    # Whole name parts only: "age" and "customer_age" are ages, "data_usage_gb" is not.
    parts = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", column).lower())
    return any(part in _SENSITIVE_HINTS for part in parts)


def _spread(values: dict[str, dict[str, float]], metric: str) -> float | None:
    scores = [v[metric] for v in values.values() if metric in v and not math.isnan(v[metric])]
    # Rounded as every other figure of the card is shown: 17 digits are noise to a reader.
    return round(max(scores) - min(scores), 4) if len(scores) >= 2 else None


def render_markdown(card: dict[str, Any]) -> str:
    details = card["model_details"]
    lines = [f"# Model card: {details['name']}", ""]
    for section in SECTIONS:
        lines += [f"## {section.replace('_', ' ').capitalize()}", ""]
        body = card[section]
        if section == "metrics":
            lines += [
                f"- **problem type**: {body['problem_type'].replace('_', ' ')}",
                f"- **performance measures**: {', '.join(body['performance_measures'])}",
                f"- **primary metric**: {body['primary_metric']}",
            ]
            if "classes" in body:
                lines.append(f"- **classes**: {_fmt(body['classes'])}")
            if "positive_label" in body:
                lines += [
                    f"- **positive label**: {body['positive_label']!r} ({body['positive_label_rule']})",
                    f"- **decision threshold**: predicted {body['positive_label']!r} when its "
                    f"probability is at least {body['decision_threshold']}",
                ]
            lines += [
                f"- **uncertainty**: {body['uncertainty']['description']}",
                f"- **no-skill baseline**: {body['no_skill_baseline']}",
            ]
            gate = body["quality_gate"]
            lines += ["", f"Quality gate: **{'PASSED' if gate['passed'] else 'FAILED'}**", ""]
            lines += [f"- {reason}" for reason in gate["reasons"]]
        elif section == "quantitative_analyses":
            lines += _render_quantitative(body, card["metrics"]["primary_metric"])
        elif isinstance(body, list):
            lines += [f"- {item}" for item in body]
        else:
            lines += [f"- **{k.replace('_', ' ')}**: {_fmt(v)}" for k, v in body.items()]
        lines.append("")
    return "\n".join(lines)


def _render_quantitative(body: dict[str, Any], primary: str) -> list[str]:
    confidence = f"{body['confidence']:.0%} interval"
    lines = [f"| metric | value | {confidence} | no-skill baseline |", "|---|---|---|---|"]
    lines += [
        f"| {name} | {_fmt(entry['value'])} | {interval_text(entry)} | {_fmt(entry['no_skill'])} |"
        for name, entry in body["overall"].items()
    ]
    matrix = body["confusion_matrix"]
    if matrix:
        labels = list(matrix)
        lines += [
            "",
            "Confusion matrix (rows: actual class, columns: predicted class):",
            "",
            "| actual / predicted | " + " | ".join(labels) + " |",
            "|---|" + "---|" * len(labels),
        ]
        lines += [
            f"| {actual} | " + " | ".join(str(matrix[actual][p]) for p in labels) + " |"
            for actual in labels
        ]
    for column, values in body["by_slice"].items():
        lines += ["", f"By {column}:", "", f"| value | rows | {primary} |", "|---|---|---|"]
        lines += [
            f"| {value} | {int(m['rows'])} | {_fmt(m.get(primary, math.nan))} |"
            for value, m in values.items()
        ]
    importance = body["feature_importance"]
    if importance["features"]:
        lines += [
            "",
            f"Permutation feature importance (how much {importance['metric']} worsens when the "
            f"feature is shuffled; {importance['repeats']} repeats on {importance['rows']} rows):",
            "",
            "| feature | mean | standard deviation |",
            "|---|---|---|",
        ]
        lines += [
            f"| {item['feature']} | {_fmt(item['mean'])} | {_fmt(item['std'])} |"
            for item in importance["features"]
        ]
    for figure in body["figures"]:
        lines += ["", f"![{figure['title']}]({figure['path']})", "", f"*{figure['caption']}*"]
    return lines


def interval_text(entry: dict[str, Any]) -> str:
    """``[lower, upper]`` of an overall metric entry, or ``n/a`` when none was given."""
    lower, upper = entry.get("lower"), entry.get("upper")
    if lower is None or upper is None or math.isnan(lower) or math.isnan(upper):
        return "n/a"
    return f"[{lower:.4f}, {upper:.4f}]"


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def write_model_card(card: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path, Path]:
    """``model_card.json``, ``.md`` and ``.html`` in ``out_dir``, which holds the figures."""
    from mlcore.model_card_html import render_html

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "model_card.json", out / "model_card.md"
    html_path = out / "model_card.html"
    write_json(json_path, card)
    md_path.write_text(render_markdown(card), encoding="utf-8")
    html_path.write_text(render_html(card, root=out), encoding="utf-8")
    return json_path, md_path, html_path
