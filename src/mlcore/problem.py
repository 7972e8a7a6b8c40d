"""What a model predicts: the problem type, its classes, the positive label and the decision threshold.

Three problem types, named as SageMaker's model-quality layout names its sections:
``binary_classification``, ``multiclass_classification`` and ``regression``. A
classification dataset is binary or multiclass by the number of classes the model was
trained on, never by the classes that happen to appear in one slice or one window.

The positive label of a binary target, when ``dataset.positive_label`` does not declare it:

1. a conventional negative/positive pair gives the positive one: ``0/1``, ``-1/1``,
   ``False/True`` and the strings ``no/yes``, ``n/y``, ``false/true``, ``f/t``,
   ``negative/positive``, ``neg/pos`` (case-insensitive);
2. otherwise the rarer class in the training data (fraud, churn, disease: the event a
   binary model is usually built to find); an exact tie is an error asking for
   ``dataset.positive_label``.

The rule that chose the label is recorded beside it (model metadata, evaluation.json,
model card), so nobody has to guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlcore.data import DatasetSpec
from mlcore.errors import DataError
from mlcore.metric_names import BINARY, MULTICLASS, PROBLEM_TYPES, REGRESSION, ProblemType

__all__ = [
    "BINARY",
    "DEFAULT_DECISION_THRESHOLD",
    "MULTICLASS",
    "PROBLEM_TYPES",
    "REGRESSION",
    "RULE_CONVENTIONAL",
    "RULE_DECLARED",
    "RULE_LEGACY",
    "RULE_MINORITY",
    "Problem",
    "ProblemType",
    "choose_positive_label",
    "class_metadata",
    "problem_type_of",
]


# A binary model calls a row positive when P(positive) reaches this, unless configured.
DEFAULT_DECISION_THRESHOLD = 0.5
# Rule names recorded beside the positive label.
RULE_DECLARED = "declared in dataset.positive_label"
RULE_CONVENTIONAL = "conventional positive of a negative/positive pair"
RULE_MINORITY = "rarer class in the training data"
RULE_LEGACY = "last class (model trained before the positive label was recorded)"

_CONVENTIONAL_POSITIVE_STRINGS = {
    frozenset({"no", "yes"}): "yes",
    frozenset({"n", "y"}): "y",
    frozenset({"false", "true"}): "true",
    frozenset({"f", "t"}): "t",
    frozenset({"negative", "positive"}): "positive",
    frozenset({"neg", "pos"}): "pos",
    frozenset({"0", "1"}): "1",
}


@dataclass(frozen=True)
class Problem:
    """The problem a model solves, as evaluation and serving need to know it.

    ``classes`` is the model's class list in the order of its probability columns;
    ``positive_label`` and ``decision_threshold`` are set for binary classification only.
    """

    task: Literal["classification", "regression"]
    classes: tuple[Any, ...] = ()
    positive_label: Any = None
    positive_label_rule: str | None = None
    decision_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.task == "classification" and len(self.classes) < 2:
            raise DataError(
                f"a classifier needs at least two classes; got {list(self.classes)}. "
                "Check that the training data holds more than one value of the target."
            )
        if self.problem_type == BINARY and self.positive_label not in self.classes:
            raise DataError(
                f"positive label {self.positive_label!r} is not one of the classes {list(self.classes)}"
            )

    @property
    def problem_type(self) -> ProblemType:
        if self.task == "regression":
            return REGRESSION
        return BINARY if len(self.classes) == 2 else MULTICLASS

    @property
    def negative_label(self) -> Any:
        """The other class of a binary problem."""
        if self.problem_type != BINARY:
            raise DataError("only a binary problem has a negative label")
        return next(c for c in self.classes if c != self.positive_label)

    @property
    def positive_index(self) -> int:
        """The positive label's column in the model's probability matrix."""
        return list(self.classes).index(self.positive_label)

    def to_dict(self) -> dict[str, Any]:
        """What evaluation.json, the model card and the metadata state about the labels."""
        data: dict[str, Any] = {"problem_type": self.problem_type}
        if self.task == "classification":
            data["classes"] = list(self.classes)
        if self.problem_type == BINARY:
            data.update(
                positive_label=self.positive_label,
                positive_label_rule=self.positive_label_rule,
                decision_threshold=self.decision_threshold,
            )
        return data

    @classmethod
    def from_metadata(cls, spec: DatasetSpec, metadata: dict[str, Any]) -> Problem:
        """The problem recorded in a model's metadata (see :func:`class_metadata`)."""
        if spec.task == "regression":
            return cls(task="regression")
        classes = tuple(metadata.get("classes", ()))
        if len(classes) != 2:
            return cls(task="classification", classes=classes)
        if "positive_label" in metadata:
            return cls(
                task="classification",
                classes=classes,
                positive_label=metadata["positive_label"],
                positive_label_rule=metadata.get("positive_label_rule"),
                decision_threshold=float(
                    metadata.get("decision_threshold", DEFAULT_DECISION_THRESHOLD)
                ),
            )
        # Models saved before the positive label was recorded scored the last class.
        return cls(
            task="classification",
            classes=classes,
            positive_label=classes[-1],
            positive_label_rule=RULE_LEGACY,
            decision_threshold=DEFAULT_DECISION_THRESHOLD,
        )


def choose_positive_label(
    labels: pd.Series | Sequence[Any], declared: Any = None
) -> tuple[Any, str]:
    """The positive label of a binary target and the rule that chose it (see the module docstring)."""
    values = pd.Series(labels).dropna()
    classes = _sorted(values.unique().tolist())
    if len(classes) != 2:
        raise DataError(f"a binary target has two classes; this one has {len(classes)}: {classes}")
    if declared is not None:
        matched = [c for c in classes if c == declared]
        if not matched:
            raise DataError(
                f"dataset.positive_label {declared!r} is not one of the target's classes {classes}. "
                "Give one of them exactly; quote it in YAML when it is a word like 'yes' or 'no', "
                "which YAML otherwise reads as true/false."
            )
        return _plain(matched[0]), RULE_DECLARED
    conventional = _conventional_positive(classes)
    if conventional is not None:
        return _plain(conventional), RULE_CONVENTIONAL
    counts = values.value_counts()
    first, second = classes
    if counts[first] == counts[second]:
        raise DataError(
            f"cannot choose the positive class of {classes}: both occur {counts[first]} times in "
            "the training data. Set dataset.positive_label to the class the model should find."
        )
    return _plain(first if counts[first] < counts[second] else second), RULE_MINORITY


def class_metadata(
    spec: DatasetSpec, classes: Sequence[Any] | np.ndarray, labels: pd.Series
) -> dict[str, Any]:
    """The metadata a trained classifier records about its labels.

    ``classes`` is the fitted estimator's ``classes_`` (its probability column order);
    ``labels`` the training target, for the rarer-class rule. A declared
    ``spec.positive_label`` on a target with more than two classes is an error.
    """
    plain = [_plain(c) for c in classes]
    metadata: dict[str, Any] = {"classes": plain}
    if len(plain) != 2:
        if spec.positive_label is not None:
            raise DataError(
                f"dataset.positive_label is set ({spec.positive_label!r}) but {spec.target!r} has "
                f"{len(plain)} classes {plain}; a positive label applies to binary targets only. "
                "Remove it for a multiclass target."
            )
        return metadata
    positive, rule = choose_positive_label(labels, spec.positive_label)
    threshold = (
        spec.decision_threshold
        if spec.decision_threshold is not None
        else DEFAULT_DECISION_THRESHOLD
    )
    metadata.update(positive_label=positive, positive_label_rule=rule, decision_threshold=threshold)
    return metadata


def problem_type_of(task: str, target: pd.Series) -> ProblemType:
    """The problem type a dataset's target gives, before any model is trained."""
    if task == "regression":
        return REGRESSION
    return BINARY if target.dropna().nunique() == 2 else MULTICLASS


def _conventional_positive(classes: Sequence[Any]) -> Any:
    first, second = classes
    if all(isinstance(c, bool | np.bool_) for c in classes):
        return True
    if all(isinstance(c, int | float | np.integer | np.floating) for c in classes):
        if {float(first), float(second)} in ({0.0, 1.0}, {-1.0, 1.0}):
            return first if float(first) == 1.0 else second
        return None
    if all(isinstance(c, str) for c in classes):
        positive = _CONVENTIONAL_POSITIVE_STRINGS.get(frozenset(c.strip().lower() for c in classes))
        if positive is not None:
            return next(c for c in classes if c.strip().lower() == positive)
    return None


def _sorted(values: list[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:  # mixed types: any fixed order will do
        return sorted(values, key=repr)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
