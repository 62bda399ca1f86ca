"""Every paper table on the micro study, the HTML report, and a look at it in Chromium."""

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ..conftest import REPO, run_snakemake, why_snakemake_failed

MICRO_TABLES = REPO / "tests" / "configs" / "micro_tables.yaml"
TABLES = ("datasets", "main", "synbench", "mix_ratio", "mixdiff_views", "realtune",
          "pretrain_finetune", "cfg")
#: A written number: one decimal, or up to 4 where a CI excluding 0 needs them (Cell.decimals).
NUMBER = r"-?\d+\.\d{1,4}"
CI_CELL = rf"^{NUMBER} \[{NUMBER}, {NUMBER}\]$"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("micro_tables")
    proc = run_snakemake(workdir, "--cores", "2", config=MICRO_TABLES, timeout=2400)
    assert proc.returncode == 0, why_snakemake_failed(proc)
    return workdir


def test_every_table_rule_is_a_listed_target(tmp_path):
    proc = run_snakemake(tmp_path, "--list-target-rules", config=MICRO_TABLES)
    assert proc.returncode == 0, why_snakemake_failed(proc)
    assert {f"table_{name}" for name in TABLES} <= set(proc.stdout.split())


def test_two_tables_share_their_common_artifacts(tmp_path):
    proc = run_snakemake(tmp_path, "--quiet", "rules", "-n", "table_main", "table_mix_ratio",
                         config=MICRO_TABLES)
    assert proc.returncode == 0, why_snakemake_failed(proc)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.M))
    # real, synthetic (shared by both tables) and mix50 (mix_ratio only): three DINO runs
    assert counts["pretrain"] == "3" and counts["table"] == "2"


def test_every_table_is_written_with_cis_a_finding_and_keys(finished):
    tables = finished / "results" / "tables"
    for name in TABLES:
        for ext in ("md", "csv", "tex"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0, (name, ext)
    for name in ("main", "mix_ratio", "mixdiff_views", "realtune", "pretrain_finetune", "cfg"):
        frame = pd.read_csv(tables / f"{name}.csv", dtype=str)
        metric = "test top-1" if name == "pretrain_finetune" else "linear top-1"
        runs = frame[metric].iloc[:2] if name == "main" else frame[metric]
        assert runs.str.match(CI_CELL).all(), (name, list(runs))
        assert "Finding:" in (tables / f"{name}.md").read_text().splitlines()[0], name
        for key in frame["key"].dropna().iloc[:2 if name == "main" else None]:
            assert list(finished.glob(f"results/*/{key}/spec.json")), (name, key)
    realtune = pd.read_csv(tables / "realtune.csv", dtype=str)
    assert list(realtune["tuning"]) == ["vanilla", "SynTune", "RealTune"] * 2
    assert realtune["paper top-1"].tolist()[:3] == ["68.2", "39.3", "63.5"]
    finetune = pd.read_csv(tables / "pretrain_finetune.csv", dtype=str)
    assert len(finetune) == 9 and set(finetune["fine-tuning"]) == {"none", "synthetic", "real"}
    mix = pd.read_csv(tables / "mix_ratio.csv")
    assert list(mix["real %"]) == [0, 50, 100]
    assert (tables / "mix_ratio.png").stat().st_size > 0
    synbench = pd.read_csv(tables / "synbench.csv")
    assert list(synbench["dataset"]) == ["afhq", "afhq_syn", "afhq_syn@cfg2.5"]
    cfg = pd.read_csv(tables / "cfg.csv", dtype={"DINO key": str, "key": str})
    assert list(cfg["CFG scale"]) == [2.5, 7.5]
    # each pretrained scale names its DINO run; at the generator's own scale, main's synthetic
    for key in cfg["DINO key"]:
        assert list(finished.glob(f"results/pretrain/{key}/spec.json")), key
    main = pd.read_csv(tables / "main.csv", dtype=str).set_index("pretraining data")
    assert cfg.set_index("CFG scale").loc[7.5, "DINO key"] == main.loc["synthetic", "key"]
    assert "The row at scale 7.5 is the generator itself" in (tables / "cfg.md").read_text()
    # every table that shows DINO numbers names the backbone, the recipe's departures from
    # main_dino.py's defaults and each column's protocol; the cfg sweep's pretrained scales too
    for name in ("main", "mix_ratio", "mixdiff_views", "realtune", "pretrain_finetune", "cfg"):
        caption = (tables / f"{name}.md").read_text().splitlines()[0]
        assert re.search(r"Backbone \S+, DINO \d+ epochs( on \d+ images)? \((settings unlike|"
                         r"otherwise) the official main_dino\.py defaults", caption), name
        assert "Linear top-1: linear probe" in caption and "k-NN: DINO weighted" in caption, name
        # each row's pretraining data, images and steps, in the row's own words
        assert re.search(r"Pretraining per row: '[^']+' = .+: \d+ images, \d+ DINO steps",
                         caption), name
    # the fine-tuned column names its own recipe, as each probe column does
    caption = (tables / "pretrain_finetune.md").read_text().splitlines()[0]
    assert re.search(r"supervised fine-tuning, \d+ images per class \(balanced\), \d+ epochs: "
                     r"the whole backbone and a new linear head, AdamW lr \S+ \(head x\S+\) "
                     r"cosine, weight decay \S+, batch \d+, RandomResizedCrop scale "
                     r"\[\S+, \S+\] \+ flip, label smoothing \S+, \d+ images\)", caption), caption


def test_realtune_subsets_are_recorded_and_hold_no_test_image(finished):
    subsets = list(finished.glob("results/realtune/*/subset.csv"))
    assert len(subsets) == 10
    for path in subsets:
        frame = pd.read_csv(path)
        assert len(frame) > 0 and not frame["split"].eq("test").any()


def test_figures_cover_every_kind(finished):
    kinds = {p.name.split("__")[0] for p in (finished / "results" / "figures").glob("*.png")}
    assert {"loss", "confusion", "retrieval", "audit_scale", "audit_brightness", "samples",
            "attention", "mix_ratio"} <= kinds


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_html_report_renders_the_tables_in_headless_chromium(finished, tmp_path):
    proc = run_snakemake(finished, "--report", "results/report.html", config=MICRO_TABLES)
    assert proc.returncode == 0, why_snakemake_failed(proc)
    report = finished / "results" / "report.html"
    assert report.stat().st_size > 10_000
    browser = _chromium()
    if browser is None:
        reason = "no chromium on this machine (Debian: apt-get install chromium)"
        if os.environ.get("SYNREAL_REQUIRE_CHROMIUM") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    offline = ["--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"]
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", *offline, f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=15000"]
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1280,1000",
                    report.as_uri()], capture_output=True, timeout=180, check=False)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 5, "the screenshot is a blank page"
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], capture_output=True,
                         text=True, timeout=180, check=False).stdout
    # the sidebar is drawn by the report's JavaScript: present only if the page rendered
    assert "<span>Tables</span>" in dom and "<span>Figures</span>" in dom, dom[:2000]
    for name in TABLES:
        assert f"results/tables/{name}.md" in dom, name


def test_a_failing_table_leaves_a_readable_error_in_its_log(finished, tmp_path):
    work = tmp_path / "copy"
    shutil.copytree(finished, work, symlinks=True)
    for metrics in work.glob("results/probe/*/metrics.json"):
        metrics.unlink()  # the artifacts still look finished (spec.json), their data is gone
    proc = run_snakemake(work, "--forcerun", "table", "--cores", "1", "table_main",
                         config=MICRO_TABLES)
    assert proc.returncode != 0
    log = (work / "results" / "logs" / "tables" / "main.log").read_text()
    assert "synreal table: error:" in log and "metrics.json is missing" in log
    assert "Traceback" not in log


def test_a_collapsed_pretraining_run_is_named_in_the_captions(finished, tmp_path):
    import json
    import math

    work = tmp_path / "copy"
    shutil.copytree(finished, work, symlinks=True)
    key = pd.read_csv(work / "results" / "tables" / "main.csv", dtype=str)["key"].iloc[0]
    # the verdict is read from each run's training log: the first run's teacher drifts to
    # uniform in every step, every other run is healthy
    for log in work.glob("results/pretrain/*/train_log.jsonl"):
        log_k = math.log(json.loads((log.parent / "spec.json").read_text())
                         ["params"]["dino"]["out_dim"])
        entropy = 0.95 * log_k if log.parent.name == key else 0.3 * log_k
        records = [{**json.loads(line), "teacher_entropy": entropy,
                    "kl_to_uniform": 0.02 * log_k, "student_mi": 1.0}
                   for line in log.read_text().splitlines()]
        log.write_text("".join(json.dumps(r) + "\n" for r in records))
    proc = run_snakemake(work, "--forcerun", "table", "--cores", "1", "table_main",
                         config=MICRO_TABLES)
    assert proc.returncode == 0, why_snakemake_failed(proc)
    caption = (work / "results" / "tables" / "main.md").read_text().splitlines()[0]
    assert "WARNING: collapsed DINO run" in caption, caption
    assert "real (uniform)" in caption and "synthetic (" not in caption, caption


def test_the_default_profile_rebuilds_a_table_after_a_config_change(finished, tmp_path):
    # The table's path is not content-keyed: only its new input keys say it is stale.
    profile = ("--profile", str(REPO / "workflow" / "profiles" / "default"))
    same = run_snakemake(finished, "-n", *profile, "table_main", config=MICRO_TABLES)
    assert same.returncode == 0 and "Nothing to be done" in same.stdout + same.stderr
    changed = tmp_path / "changed.yaml"
    changed.write_text(MICRO_TABLES.read_text().replace("    epochs: 2\n", "    epochs: 3\n", 1))
    proc = run_snakemake(finished, "-n", "--quiet", "rules", *profile, "table_main",
                         config=changed)
    assert proc.returncode == 0, why_snakemake_failed(proc)
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout, re.M))
    assert counts.get("pretrain") == "2" and counts.get("table") == "1", proc.stdout


CELL = re.compile(rf"^({NUMBER}) \[({NUMBER}), ({NUMBER})\]$")


def estimate_and_ci(cell: str) -> tuple[float, float, float]:
    estimate, lo, hi = CELL.match(cell).groups()
    return float(estimate), float(lo), float(hi)


def written_points(cell: str) -> str:
    """A cell's estimate as a Finding quotes it: signed, with the cell's decimals."""
    estimate = CELL.match(cell).group(1)
    return estimate if estimate.startswith("-") else f"+{estimate}"


METRIC_COLUMNS = ("linear top-1", "k-NN top-1 (k=20)", "retrieval mAP", "R@1")


def check_written_differences(tables) -> int:
    """Every paired-difference row of every written table is B - A of its own rows' cells
    (within rounding), lies inside its CI, and its "differ?" row agrees with that CI.

    Returns how many differences were checked.
    """
    checked = 0
    for path in sorted(tables.glob("*.csv")):
        frame = pd.read_csv(path, dtype=str).fillna("")
        first = frame.columns[0]
        rows = frame.set_index(first)
        for label in [v for v in frame[first] if v.endswith(" (paired)")]:
            b_name, a_name = label.removesuffix(" (paired)").split(" - ")
            for column in [c for c in METRIC_COLUMNS if c in frame.columns]:
                a = estimate_and_ci(rows.loc[a_name, column])[0]
                b = estimate_and_ci(rows.loc[b_name, column])[0]
                diff, lo, hi = estimate_and_ci(rows.loc[label, column])
                # each cell is rounded to 0.1: the rounded difference may be 0.1 off
                assert abs(diff - (b - a)) <= 0.1 + 1e-9, (path.name, label, column, a, b, diff)
                assert lo <= diff <= hi, (path.name, label, column)
                verdict = rows.loc[f"differ? ({label.removesuffix(' (paired)')})", column]
                assert verdict == ("yes" if lo > 0 or hi < 0 else "no (CI contains 0)"), column
                checked += 1
    return checked


def check_written_main_table(tables) -> None:
    """The written main table: its differences are B - A of its own rows (within rounding),
    a multi-seed table says so, and its Finding reads the controls first, then quotes the
    real-vs-synthetic difference with the words and verdict its CI (and the controls) allow."""
    from synreal.report import story

    assert check_written_differences(tables) >= 4
    frame = pd.read_csv(tables / "main.csv", dtype=str).fillna("")
    rows = frame.set_index("pretraining data")
    label = "synthetic - real"
    caption = (tables / "main.md").read_text().splitlines()[0]
    finding = caption.split("Finding:")[1]
    if "seeds" in frame.columns:
        seeds = {int(n) for n in frame["seeds"] if n}
        assert len(seeds) == 1, seeds
        assert f"mean over {seeds.pop()} seeds" in caption
        assert "CI over seeds and test images" in caption
    diff, lo, hi = estimate_and_ci(rows.loc[f"{label} (paired)", "linear top-1"])
    assert f"{label} {written_points(rows.loc[f'{label} (paired)', 'linear top-1'])} points" in (
        finding), finding
    controls = {}
    for part in ("negative", "positive"):
        found = [v for v in frame["pretraining data"]
                 if v.startswith(f"{part} control") and v.endswith(" (paired)")]
        if found:
            controls[part] = estimate_and_ci(rows.loc[found[0], "linear top-1"])
            assert f"the {part} control" in finding.split(label)[0], finding
    found = [v for v in frame["pretraining data"]
             if v.startswith("real - control: random init") and v.endswith(" (paired)")]
    if found:  # what pretraining added to the untrained backbone
        controls["random_init"] = estimate_and_ci(rows.loc[found[0], "linear top-1"])
        quoted = f"real - random init {written_points(rows.loc[found[0], 'linear top-1'])} points"
        assert quoted in finding.split(label)[0], finding
    untrained_as_good = "random_init" in controls and not controls["random_init"][1] > 0
    if "random_init" in controls:
        assert ("is NOT shown to add" in finding) == untrained_as_good, finding
        said = "features are not shown to depend on the pretraining" in finding
        assert said == untrained_as_good, finding
    failed = ("positive" in controls and not controls["positive"][2] < 0) or (
        "negative" in controls and not controls["negative"][1] <= 0 <= controls["negative"][2]
    ) or untrained_as_good
    if controls:
        assert finding.strip().startswith("Controls first:"), finding
    if "positive" in controls and not controls["positive"][2] < 0:
        assert "NOT detected" in finding
        # the first failed control gives the reason: the random-init one is read first
        assert untrained_as_good or "cannot tell the answer at this scale" in finding
    if "negative" in controls and not controls["negative"][1] <= 0 <= controls["negative"][2]:
        assert "SHOWS A DIFFERENCE" in finding
    if "negative" in controls:  # its other columns whose CI excludes 0 are named, and no other
        name = next(v for v in frame["pretraining data"]
                    if v.startswith("negative control") and v.endswith(" (paired)"))
        verdicts = rows.loc[f"differ? ({name.removesuffix(' (paired)')})"]
        for column in METRIC_COLUMNS[1:]:
            if column in frame.columns and rows.loc[name, column]:
                quoted = (f"{column} (negative - reference "
                          f"{written_points(rows.loc[name, column])} points")
                assert (quoted in finding) == (verdicts[column] == "yes"), (column, finding)
    if hi < 0:
        assert "real pretraining is significantly better" in finding
    elif lo > 0:
        assert "synthetic pretraining is significantly better" in finding
    else:
        assert "no significant difference" in finding
    if failed:
        assert finding.endswith(story.CANNOT_TELL + ".")
    elif hi < 0:
        assert finding.endswith(story.CONSISTENT + ".")
    elif lo > 0:
        assert finding.endswith(story.CONTRADICTS + ".")
    else:
        assert finding.endswith(story.CANNOT_TELL + ".")


#: The tables whose Findings read the main table's controls first (issue 21).
READ_CONTROLS_FIRST = ("mix_ratio", "mixdiff_views", "realtune", "pretrain_finetune")


def check_tables_read_the_controls_first(tables) -> int:
    """Each written table that compares pretraining quotes the main table's controls, word
    for word, before its own comparison, and is not judged where a control failed.

    Returns how many tables were checked."""
    from synreal.report import story

    def finding(name: str) -> str:
        return (tables / f"{name}.md").read_text().splitlines()[0].split("Finding: ", 1)[1]

    main = finding("main")
    said = main.removeprefix("Controls first: ").split(". ", 1)[0]
    failed = any(words in said for words in ("NOT detected", "NOT shown", "SHOWS A DIFF"))
    checked = 0
    for name in READ_CONTROLS_FIRST:
        if not (tables / f"{name}.md").exists():
            continue
        text = finding(name)
        assert text.startswith(f"Controls first (the study's, as table main reads them): "
                               f"{said}. "), (name, text)
        if failed:
            assert "this table's comparison is not judged" in text, (name, text)
            assert text.endswith(f": {story.CANNOT_TELL}."), (name, text)
        else:  # its own verdict stands
            assert "this table's comparison is not judged" not in text, (name, text)
        checked += 1
    return checked


def test_the_written_main_table_differences_equal_their_cells(finished):
    check_written_main_table(finished / "results" / "tables")


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    """The micro study's main table with 2 seeds of real and synthetic and all controls."""
    import yaml

    workdir = tmp_path_factory.mktemp("micro_replicated")
    config = yaml.safe_load(MICRO_TABLES.read_text())
    config["replicates"] = {"seeds": 2, "runs": ["real", "synthetic"]}
    config["controls"] = {"negative": True, "positive": True, "random_init": True}
    path = workdir / "replicated.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = run_snakemake(workdir, "--cores", "2", "table_main", "table_mix_ratio", config=path,
                         timeout=2400)
    assert proc.returncode == 0, why_snakemake_failed(proc)
    return workdir


def test_the_replicated_main_table_shows_seed_means_two_level_cis_and_the_controls(replicated):
    tables = replicated / "results" / "tables"
    check_written_main_table(tables)
    assert check_tables_read_the_controls_first(tables) == 1  # mix_ratio
    frame = pd.read_csv(tables / "main.csv", dtype=str).fillna("")
    assert list(frame["pretraining data"][:6]) == [
        "real", "synthetic", "control: real half A", "negative control: real half B",
        "positive control: noise", "control: random init"]
    assert list(frame["seeds"][:6]) == ["2"] * 6
    assert frame["linear top-1"][:6].str.match(CI_CELL).all()
    caption = (tables / "main.md").read_text().splitlines()[0]
    assert "seeds 0, 1" in caption and "mean over 2 seeds" in caption
    assert (tables / "main_seeds.png").stat().st_size > 0
    # every seed of every row is its own artifact, named in its own spec
    specs = [json.loads(p.read_text()) for p in replicated.glob("results/pretrain/*/spec.json")]
    seeds = sorted(s["params"]["dino"]["seed"] for s in specs)
    assert seeds == [0] * 7 + [1] * 6  # main's 6 runs at 2 seeds, mix_ratio's mix50 at one
    # the random-init control: no data, no step, the real run's recipe at each seed
    untrained = [s for s in specs if s["params"]["data"]["source"] == "random_init"]
    real = {s["params"]["dino"]["seed"]: s["params"]["dino"] for s in specs
            if s["params"]["data"]["source"] == "real" and "real" in s["upstream"]
            and s["upstream"]["real"].startswith("ingest/")}
    assert sorted(s["params"]["dino"]["seed"] for s in untrained) == [0, 1]
    assert all(s["upstream"] == {} and s["params"]["dino"] == real[s["params"]["dino"]["seed"]]
               for s in untrained)
    # the halves are disjoint parts of the real training split; B holds no test image
    parts = {}
    for spec_file in replicated.glob("results/control/*/spec.json"):
        part = json.loads(spec_file.read_text())["params"]["part"]
        parts[part] = pd.read_parquet(spec_file.parent / "manifest.parquet")
    assert set(parts) == {"reference", "negative", "positive"}
    assert set(parts["reference"]["id"]).isdisjoint(parts["negative"]["id"])
    assert set(parts["negative"]["split"]) == {"train"}
    assert list(parts["positive"]["id"]) == list(parts["negative"]["id"])
