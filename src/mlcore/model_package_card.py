"""The model card as SageMaker's model package takes it: ``ModelCard`` in CreateModelPackage.

The request member is ``{"ModelCardContent": <JSON text>, "ModelCardStatus": ...}``
(botocore's ``ModelPackageModelCard`` shape). The content follows the model package model
card schema: the model card schema without ``model_package_details``, with
``model_overview`` limited to ``model_creator`` and ``model_artifact`` (the API reference
of ModelPackageModelCard). The SageMaker SDK generates its ``ModelCardContent`` shapes from
that schema; the tests validate what is written here against them and the request
against botocore's service model.

The schema's limits are kept here rather than discovered at registration: texts are cut
to their maximum length (ending in "…", the full text being in model_card.json beside
it), metrics undefined on the data are left out (the schema has no null), and the
confusion matrix is given only up to the schema's 20 classes. The model card itself is
:mod:`mlcore.model_card`; this module only re-expresses it. Nothing here imports a cloud SDK.
"""

from __future__ import annotations

import json
import math
from typing import Any

from mlcore import __version__

MODEL_PACKAGE_CARD_FILE = "model_package_card.json"
# Reviewers approve the package; the card waits for the same review.
CARD_STATUS = "PendingReview"
# Limits of the model package model card schema.
MAX_CONTENT_CHARS = 100_000  # ModelCardContent's length constraint
_MAX_NAME = 63
_MAX_NOTES = 1024
_MAX_CUSTOM = 1024
_MAX_OBSERVATION = 2096
_MAX_LONG_TEXT = 2048
_MAX_MATRIX = 20
_MAX_HYPERPARAMETER = 255


def model_package_card(card: dict[str, Any], *, status: str = CARD_STATUS) -> dict[str, str]:
    """The ``ModelCard`` member of CreateModelPackage for ``card`` (an mlcore model card).

    Raises
    ------
    ValueError
        When the content exceeds the API's 100,000 characters even after the limits above.
    """
    content = json.dumps(package_card_content(card), separators=(",", ":"), allow_nan=False)
    if len(content) > MAX_CONTENT_CHARS:
        raise ValueError(
            f"the model package card is {len(content)} characters, over SageMaker's "
            f"{MAX_CONTENT_CHARS}: use fewer slice columns or fewer of their values"
        )
    return {"ModelCardContent": content, "ModelCardStatus": status}


def package_card_content(card: dict[str, Any]) -> dict[str, Any]:
    """The content document (a dict) in the model package model card schema."""
    details, metrics = card["model_details"], card["metrics"]
    gate = metrics["quality_gate"]
    content: dict[str, Any] = {
        "model_overview": {"model_creator": f"mlcore {__version__}"},
        "intended_uses": {
            "purpose_of_model": _fit(card["intended_use"]["primary_use"], _MAX_LONG_TEXT),
            "intended_uses": _fit(card["intended_use"]["out_of_scope"], _MAX_LONG_TEXT),
            "factors_affecting_model_efficiency": _fit(_factors(card), _MAX_LONG_TEXT),
        },
        "training_details": _training(card),
        "evaluation_details": [
            {
                "name": _fit(f"{details['name']} evaluation", _MAX_NAME),
                "evaluation_observation": _fit(
                    f"Quality gate {'PASSED' if gate['passed'] else 'FAILED'}: "
                    + "; ".join(gate["reasons"]),
                    _MAX_OBSERVATION,
                ),
                "metadata": {
                    key: _fit(str(value), _MAX_CUSTOM)
                    for key, value in {
                        "rows": card["evaluation_data"]["rows"],
                        "fingerprint": card["evaluation_data"]["fingerprint"],
                        "uncertainty": metrics["uncertainty"]["description"],
                        "no_skill_baseline": metrics["no_skill_baseline"],
                    }.items()
                },
                "metric_groups": _metric_groups(card),
            }
        ],
        "additional_information": {
            "ethical_considerations": _fit(
                card["ethical_considerations"]["statement"], _MAX_LONG_TEXT
            ),
            "caveats_and_recommendations": _fit(
                " ".join(card["caveats_and_recommendations"]), _MAX_LONG_TEXT
            ),
            "custom_details": {
                key: _fit(str(value), _MAX_CUSTOM)
                for key, value in {
                    "model_sha256": details.get("model_sha256"),
                    "git_commit": details.get("git_commit"),
                    "git_dirty": details.get("git_dirty"),
                    "algorithm": details.get("algorithm"),
                    "problem_type": metrics["problem_type"],
                    "primary_metric": metrics["primary_metric"],
                    "quality_gate": "passed" if gate["passed"] else "failed",
                }.items()
                if value is not None
            },
        },
    }
    return content


def _factors(card: dict[str, Any]) -> str:
    factors = card["factors"]
    slices = ", ".join(factors["slice_columns"]) or "none"
    review = ", ".join(factors["features_needing_fairness_review"]) or "none"
    return f"Evaluated by slice of: {slices}. Features needing a fairness review: {review}."


def _training(card: dict[str, Any]) -> dict[str, Any]:
    training, details = card["training_data"], card["model_details"]
    hyperparameters = [
        {"name": _fit(str(name), 255), "value": _fit(json.dumps(value), _MAX_HYPERPARAMETER)}
        for name, value in sorted((details.get("hyperparameters") or {}).items())
    ]
    return {
        "training_observations": _fit(
            f"{training['rows']} training rows (fingerprint {training['fingerprint']}); target "
            f"{training['target']!r}; {len(training['numeric_features'])} numeric and "
            f"{len(training['categorical_features'])} categorical features; seed "
            f"{details.get('seed')}.",
            _MAX_NOTES,
        ),
        "training_job_details": {"hyper_parameters": hyperparameters[:100]},
    }


def _metric_groups(card: dict[str, Any]) -> list[dict[str, Any]]:
    analyses = card["quantitative_analyses"]
    confidence = analyses.get("confidence") or 0.95
    overall = []
    for name, entry in analyses["overall"].items():
        if not _finite(entry.get("value")):
            continue  # undefined on these rows: the schema has no null
        notes = [f"{confidence:.0%} interval {_interval(entry)}"]
        if _finite(entry.get("no_skill")):
            notes.append(f"no-skill baseline {entry['no_skill']:.4f}")
        overall.append(
            {
                "name": name,
                "type": "number",
                "value": float(entry["value"]),
                "notes": _fit("; ".join(notes), _MAX_NOTES),
            }
        )
    groups: list[dict[str, Any]] = [{"name": "overall", "metric_data": overall}]
    matrix = analyses.get("confusion_matrix")
    if matrix and len(matrix) <= _MAX_MATRIX:
        labels = list(matrix)
        groups.append(
            {
                "name": "confusion matrix",
                "metric_data": [
                    {
                        "name": "confusion matrix",
                        "type": "matrix",
                        "value": [[matrix[a][p] for p in labels] for a in labels],
                        "x_axis_name": [_fit(f"predicted {label}", 255) for label in labels],
                        "y_axis_name": [_fit(f"actual {label}", 255) for label in labels],
                        "notes": "rows: actual class; columns: predicted class",
                    }
                ],
            }
        )
    importance = analyses.get("feature_importance") or {}
    features = [item for item in importance.get("features", []) if _finite(item["mean"])]
    if features:
        groups.append(
            {
                "name": "permutation feature importance",
                "metric_data": [
                    {
                        "name": f"worsening of {importance['metric']} when shuffled",
                        "type": "bar_chart",
                        "value": [float(item["mean"]) for item in features],
                        "x_axis_name": [_fit(item["feature"], 255) for item in features],
                        "y_axis_name": importance["metric"],
                    }
                ],
            }
        )
    primary = card["metrics"]["primary_metric"]
    for column, values in analyses["by_slice"].items():
        scored = [(value, m[primary]) for value, m in values.items() if _finite(m.get(primary))]
        if scored:
            groups.append(
                {
                    "name": _fit(f"by {column}", _MAX_NAME),
                    "metric_data": [
                        {
                            "name": f"{primary} by {column}",
                            "type": "bar_chart",
                            "value": [float(metric) for _, metric in scored],
                            "x_axis_name": [_fit(value, 255) for value, _ in scored],
                            "y_axis_name": primary,
                        }
                    ],
                }
            )
    return groups


def _interval(entry: dict[str, Any]) -> str:
    if _finite(entry.get("lower")) and _finite(entry.get("upper")):
        return f"[{entry['lower']:.4f}, {entry['upper']:.4f}]"
    return "n/a"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
