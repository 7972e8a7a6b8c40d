"""The Spark drift monitor's application: ``mlcore drift --engine spark`` under spark-submit.

smspark-submit runs this file on the primary instance with the starter's arguments
(``pipelines.monitoring.jobs.drift_command``); the SparkSession mlcore opens picks up the
YARN master that spark-submit set, so the work spreads over every instance of the job.
The exit code is mlcore's: non-zero fails the processing job, which the publisher reports.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from mlcore.cli import main as mlcore_main

    return mlcore_main(["drift", "--engine", "spark", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
