"""Benchmark the default test run (``make test``) against the whole suite it used to be.

Runs the pytest command of the Makefile's ``test`` target (read from the Makefile, so the two
cannot drift) in this checkout and prints its wall time, CPU seconds (user + system of pytest
and everything it started), the tests it ran and the ratio to the goal (under 600 s on 2
cores, issue 21). With ``--baseline`` it then runs the same command without the marker
filter, the whole suite (``make test-all``, what ``make test`` ran before it left out the
tests marked ``slow``), and prints the ratio between the two: that takes about an hour on 2
cores.

Usage: ``python bench/suite.py [--baseline]``. Run it on an otherwise idle machine: the
suite's own processes use every core.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 600.0


def makefile_pytest_command(target: str = "test") -> list[str]:
    """The ``python -m pytest ...`` line of ``target``'s recipe in the Makefile."""
    recipe = re.search(rf"(?ms)^{re.escape(target)}:[^\n]*\n((?:\t[^\n]*\n)+)",
                       (REPO / "Makefile").read_text())
    if recipe is None:
        sys.exit(f"bench/suite.py: the Makefile has no `{target}` target")
    for line in recipe.group(1).splitlines():
        words = shlex.split(line.strip())
        if words[:3] == ["python", "-m", "pytest"]:
            return [sys.executable, *words[1:]]
    sys.exit(f"bench/suite.py: the Makefile's `{target}` target runs no `python -m pytest`")


def without_marker_filter(command: list[str]) -> list[str]:
    """``command`` (``python -m pytest ...``) with pytest's ``-m <expr>`` removed: every test."""
    head, rest = command[:3], command[3:]
    out, skip = [], False
    for word in rest:
        if skip:
            skip = False
        elif word == "-m":
            skip = True
        else:
            out.append(word)
    return [*head, *out]


def timed(command: list[str]) -> tuple[float, float, str, int]:
    """Wall seconds, CPU seconds, pytest's summary line and exit code of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False,
                          env={**os.environ, "PATH": f"{Path(sys.executable).parent}"
                                                     f"{os.pathsep}{os.environ['PATH']}"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = next((line.strip("= ") for line in reversed(proc.stdout.splitlines())
                    if re.search(r"\d+ (passed|failed)", line)), proc.stdout[-300:])
    return wall, cpu, summary, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", action="store_true",
                        help="also run the whole suite (about an hour on 2 cores)")
    args = parser.parse_args()
    command = makefile_pytest_command()
    print("default run:", shlex.join(command[1:]), flush=True)
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    wall, cpu, summary, code = timed(command)
    print(f"default run: {wall:.0f} s wall, {cpu:.0f} CPU s, {summary} (exit {code}); "
          f"{wall / GOAL_S:.2f}x the {GOAL_S:.0f} s goal: "
          f"{'met' if wall < GOAL_S and code == 0 else 'NOT met'}")
    if args.baseline:
        whole = without_marker_filter(command)
        print("baseline (the whole suite):", shlex.join(whole[1:]), flush=True)
        base_wall, base_cpu, base_summary, base_code = timed(whole)
        print(f"whole suite: {base_wall:.0f} s wall, {base_cpu:.0f} CPU s, {base_summary} "
              f"(exit {base_code}); the default run takes {wall / base_wall:.2f}x its wall "
              f"time ({base_wall / wall:.1f}x faster)")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
