"""Benchmark runner: NannyML 0.13.1 univariate drift (KS + chi-squared), in bench/.venvs/nannyml.

One chunk covers the whole current data. NannyML alerts on KS when the KS
statistic exceeds a threshold; it is set to mlcore's minimum effect size (0.1),
which at this sample size is mlcore's rule too (p < 0.05 holds for any KS
statistic above about 0.002). Its chi-squared is a homogeneity test on the
contingency table, as in mlcore, alerting at p < 0.05.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from protocol import DATA_DIR, emit, load_spec, timed

KS_THRESHOLD = 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="The resulting number of chunks is too low")

    import nannyml as nml
    from nannyml.thresholds import ConstantThreshold

    spec = load_spec(args.data)
    columns = spec["numeric"] + spec["categorical"]
    reference = pd.read_parquet(args.data / "reference.parquet", columns=columns)
    current = pd.read_parquet(args.data / "current.parquet", columns=columns)

    def compute() -> tuple[dict[str, bool], dict[str, float]]:
        calculator = nml.UnivariateDriftCalculator(
            column_names=columns,
            treat_as_categorical=spec["categorical"],
            continuous_methods=["kolmogorov_smirnov"],
            categorical_methods=["chi2"],
            chunk_number=1,
            thresholds={"kolmogorov_smirnov": ConstantThreshold(upper=KS_THRESHOLD)},
        )
        calculator.fit(reference)
        frame = calculator.calculate(current).filter(period="analysis").to_df()
        verdicts, statistics = {}, {}
        for column in columns:
            method = "chi2" if column in spec["categorical"] else "kolmogorov_smirnov"
            verdicts[column] = bool(frame[(column, method, "alert")].iloc[0])
            statistics[column] = float(frame[(column, method, "value")].iloc[0])
        return verdicts, statistics

    (verdicts, statistics), seconds = timed(compute)
    emit("nannyml", seconds, verdicts, statistics=statistics)


if __name__ == "__main__":
    main()
