"""Benchmark what every Snakefile read costs before Snakemake schedules anything.

The Snakefile loads, validates and plans the study on every ``snakemake`` call (dry runs
included), and on Slurm every job reads it twice more (the plugin's job step, then its
srun). This times that read, each in a fresh interpreter as Snakemake's would be, in a new
temporary folder (so the rehearsal's fixtures and ``.snakemake/`` start empty):

* ``main, first call``: the run's main process with nothing remembered: the data and audit
  weights checks (importing timm, open_clip, transformers) and the disk estimate's
  parameter counts (torch, timm), as every call made them before they were remembered;
* ``main, again``: the same call once ``.snakemake/synreal/`` holds what passed;
* ``job``: a job's read, which makes none of these checks.

The baseline, in the same run, is the first call. For the rehearsal, the first call also
writes its fixtures (small images and tiny weights); that is timed apart and left out.

Usage: ``python bench/snakefile.py [--study config/studies/afhq_pets.yaml] [--repeat 3]``
(the demo and the study's rehearsal by default).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "timm", "transformers", "open_clip", "pandas", "matplotlib")

#: What the child runs: load_study and build_plan as the Snakefile does; prints JSON.
READ = """
import json, os, sys, time
import yaml
from synreal.study import load_study
config_file, mode, heavy = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
config = yaml.safe_load(open(config_file))
files = [] if config_file.endswith("config/config.yaml") else [config_file]
if config.get("rehearsal"):
    os.environ["SYNREAL_REHEARSAL"] = "1"
start = time.perf_counter()
study = load_study(config, files, quiet=(mode == "job"))
if study.workdir:
    os.chdir(study.workdir)
study.build_plan()
print(json.dumps({"seconds": time.perf_counter() - start,
                  "heavy": sorted(m for m in heavy if m in sys.modules)}))
"""


def read_once(config: Path, mode: str, cwd: Path) -> dict:
    """One Snakefile-like read in a fresh interpreter: its seconds and heavy imports."""
    proc = subprocess.run([sys.executable, "-c", READ, str(config), mode, ",".join(HEAVY)],
                          cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the {mode} read of {config} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench(name: str, config: Path, rehearsal: bool, repeat: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="synreal-bench-snakefile-"))
    try:
        if rehearsal:  # a rehearsal config: the study file plus rehearsal: true
            import yaml

            study = yaml.safe_load(config.read_text())
            target = folder / "config" / "studies" / config.name
            target.parent.mkdir(parents=True)
            target.write_text(yaml.safe_dump({**study, "rehearsal": True}))
            config = target
            fixtures = read_once(config, "main", folder)
            print(f"{name}: first call, writing the fixtures too: {fixtures['seconds']:.2f} s")
            shutil.rmtree(folder / "rehearsal" / config.stem / ".snakemake")
        rows = {}
        for label, mode, clear in (("main, first call", "main", True),
                                   ("main, again", "main", False), ("job", "job", False)):
            runs = []
            for _ in range(repeat):
                if clear:
                    for memo in folder.rglob(".snakemake"):
                        shutil.rmtree(memo)
                runs.append(read_once(config, mode, folder))
            best = min(r["seconds"] for r in runs)
            rows[label] = best
            print(f"{name}: {label:17s} {best:6.2f} s (best of {repeat}); "
                  f"imports {', '.join(runs[-1]['heavy']) or 'none of ' + '/'.join(HEAVY)}")
        first, again = rows["main, first call"], rows["main, again"]
        print(f"{name}: main process {first / again:.1f}x faster once remembered; "
              f"a job's read {rows['job']:.2f} s (x2 per Slurm job)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=REPO / "config/studies/afhq_pets.yaml")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    bench("demo", REPO / "config/config.yaml", False, args.repeat)
    bench(f"rehearsal of {args.study.stem}", args.study.resolve(), True, args.repeat)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
