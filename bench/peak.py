"""Run a benchmark script in a child process and report that child's own peak memory.

Usage: peak.py PYTHON SCRIPT [ARGS...]. The child's stdout passes through; one
more JSON line, {"peak_rss_kib": N}, comes from os.wait4's rusage of exactly
that child (ru_maxrss is in KiB on Linux). Limits set on this wrapper (the
memory cap) are inherited by the child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main() -> int:
    python, script, *args = sys.argv[1:]
    child = subprocess.Popen([python, script, *args])
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    sys.stdout.flush()
    print(json.dumps({"peak_rss_kib": usage.ru_maxrss}), flush=True)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main())
