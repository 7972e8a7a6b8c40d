"""Seasonal and rolling references: which rows of the reference data a current window meets.

"Warm coats in winter": against the training baseline, every winter drifts.
``drift.reference.mode`` in mlops.yaml chooses the comparison:

* ``training``: the baseline saved with the model (no window);
* ``same_period_last_year``: the reference data's rows from
  ``seasonal_offset_days`` (364 by default: 52 weeks, weekdays aligned)
  before the current window;
* ``previous_window``: the rows of the window of the same length just before
  the current one.

The current window is ``[first, last]`` of the current data's timestamps
unless given. Monitors pass the reference data (for example last year's
captured traffic, or the previous hour's); rows outside the reference window
are dropped here, so passing more than the window is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

from mlcore.errors import DataError
from mlcore.settings import ReferenceMode

_INSTANT = pd.Timedelta(1, "ns")


@dataclass(frozen=True)
class Window:
    start: pd.Timestamp
    end: pd.Timestamp  # inclusive

    def iso(self) -> tuple[str, str]:
        return self.start.isoformat(), self.end.isoformat()


def reference_window(current: Window, mode: ReferenceMode, *, seasonal_offset_days: int) -> Window:
    """The reference window of ``mode`` for the ``current`` window.

    Examples
    --------
    >>> now = Window(pd.Timestamp("2026-01-05", tz="UTC"), pd.Timestamp("2026-01-12", tz="UTC"))
    >>> reference_window(now, "previous_window", seasonal_offset_days=364).iso()[0]
    '2025-12-29T00:00:00+00:00'
    >>> reference_window(now, "same_period_last_year", seasonal_offset_days=364).iso()[0]
    '2025-01-06T00:00:00+00:00'
    """
    if mode == "same_period_last_year":
        offset = timedelta(days=seasonal_offset_days)
        return Window(current.start - offset, current.end - offset)
    if mode == "previous_window":
        # [start - length, start): the same length, ending just before the current window.
        return Window(current.start - (current.end - current.start), current.start - _INSTANT)
    raise ValueError(f"the {mode!r} reference has no window: it is the training baseline")


def timestamps(frame: pd.DataFrame, column: str, *, side: str) -> pd.Series:
    """The ``column`` of ``frame`` as UTC timestamps; an error names the column and the fix."""
    if column not in frame.columns:
        raise DataError(
            f"the {side} data has no timestamp column {column!r} (columns: {list(frame.columns)}); "
            "a seasonal or previous-window reference needs event times: set dataset.timestamp "
            "or pass --timestamp COL"
        )
    values = frame[column]
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    bad = int(parsed.isna().sum() - values.isna().sum())
    if bad:
        raise DataError(
            f"{bad} value(s) of the {side} data's timestamp column {column!r} are not ISO 8601 "
            f"times, e.g. {values[parsed.isna() & values.notna()].iloc[0]!r}"
        )
    return parsed


def window_of(frame: pd.DataFrame, column: str) -> Window:
    """The span of the current data's timestamps."""
    times = timestamps(frame, column, side="current").dropna()
    if times.empty:
        raise DataError(f"the current data's timestamp column {column!r} holds no times")
    return Window(times.min(), times.max())


def rows_in(frame: pd.DataFrame, column: str, window: Window) -> pd.DataFrame:
    """The rows of ``frame`` whose timestamp lies in ``window`` (both ends included)."""
    times = timestamps(frame, column, side="reference")
    return frame.loc[(times >= window.start) & (times <= window.end)].reset_index(drop=True)
