"""Which artifacts each paper table and the report's figures read: the plan's last half.

Every table is a :class:`~synreal.plan_jobs.TableJob` whose params name artifact directories by
row, so each number is traceable by key; its ``needs`` make Snakemake build exactly those
artifacts (``snakemake table_<name>``) and share them with the other tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from synreal.errors import ConfigError
from synreal.plan_jobs import CONTROL_RUNS, Job, Plan, TableJob, _facts, mix_run, run_facts
from synreal.report import paper_numbers


def _generator_text(plan: Plan, name: str) -> str:
    """A synthetic dataset in words: its name, backend, guidance scale and sampling steps."""
    job = plan.generators.get(name)
    return name if job is None else _generator_job_text(name, job)


def _generator_job_text(name: str, job: Job) -> str:
    params = job.params
    # the toy backends draw no diffusion samples: no sampler, no steps
    steps = "" if params["backend"].startswith("toy") else f", {params['steps']} sampling steps"
    return f"{name} (generator {params['backend']}, guidance {params['cfg_scale']:g}{steps})"


#: What each control run trains on, given the copied run's real dataset.
CONTROL_DATA = {
    "control_reference": "half A of {real}'s training split (real)",
    "control_negative": "half B of {real}'s training split (real, held out from half A)",
    "control_positive": "half B of {real}'s training split, each image replaced by "
                        "class-independent colour noise",
}


def _data_text(plan: Plan, name: str) -> str:
    """What pretraining run ``name`` trained on, in words: the table captions name it per row."""
    from synreal.plan_jobs import RANDOM_INIT_RUN

    runs = plan.config["pretrain"]["runs"]
    if name == RANDOM_INIT_RUN:
        return "nothing (the untrained backbone)"
    if name in CONTROL_DATA:
        copied = (plan.config.get("controls") or {}).get("run", "real")
        return CONTROL_DATA[name].format(real=runs[copied]["real"])
    run = runs.get(name)
    if run is None or name not in plan.pretrain:
        return name
    data = plan.pretrain[name].params["data"]  # resolved: a 0 % or 100 % mix is synthetic/real
    source = data["source"]
    if source == "real":
        return f"{run['real']} (real)"
    synthetic = _generator_text(plan, run["synthetic"])
    if source == "synthetic":
        return synthetic
    if source == "mix":
        share = round(100 * data["real_fraction"])
        return f"{share} % {run['real']} (real) + {100 - share} % {synthetic}"
    return f"{run['real']} (real) and {synthetic}, each image's crops split between them"


def _row(plan: Plan, evaluations: list[dict[str, Job]], models: list[Job], labels: dict,
         paper: str | None = None, data: str | None = None) -> dict:
    """A table row: its labels and, per replicate seed, the artifacts its cells read.

    The top-level directories are the first seed's (captions and keys read them);
    ``replicates`` lists every seed's, which the builders average with a two-level CI.
    """
    replicates = [{"seed": plan.seeds[i] if i < len(plan.seeds) else i,
                   "pretrain": model.out_dir,
                   **{stage: job.out_dir for stage, job in evaluation.items()}}
                  for i, (model, evaluation) in enumerate(zip(models, evaluations, strict=True))]
    # the spec's JSON sorts dict keys: the label columns' order travels as a list
    row = {"labels": labels, "label_columns": list(labels),
           **{k: v for k, v in replicates[0].items() if k != "seed"}, "replicates": replicates}
    if paper is not None:
        row["paper"] = paper
    if data is not None:
        row["data"] = data
    return row


def _run_row(plan: Plan, name: str, labels: dict, paper: str | None = None) -> dict:
    """The row of pretraining run ``name``: every replicate seed of it."""
    return _row(plan, plan.replicate_evaluations[name], plan.replicates[name], labels, paper,
                _data_text(plan, name))


def _tuned_row(plan: Plan, key: tuple[str, str, str], labels: dict,
               paper: str | None = None) -> dict:
    """The row of a RealTune job: every replicate seed of its pretraining run."""
    return _row(plan, plan.tuned_replicate_evaluations[key], plan.tuned_replicates[key],
                labels, paper, _data_text(plan, key[0]))


def _needs(rows: dict) -> list[str]:
    dirs = {d for row in rows.values() for replicate in row["replicates"]
            for k, d in replicate.items() if k != "seed"}
    return sorted(dirs)


def _table(plan: Plan, name: str, rows: dict, run_names: list[str], **extra) -> TableJob:
    return TableJob(name, {"study": plan.config["study"]["name"], "runs": rows,
                           "order": list(rows), "facts": _facts(plan, run_names), **extra},
                    _needs({**rows, **extra.get("control_runs", {})}))


def _controls_first(plan: Plan, name: str, rows: dict, run_names: list[str],
                    **extra) -> TableJob:
    """A table whose Finding reads the main table's controls first (when the study has them).

    Its params gain ``control_runs`` (the control rows, and the row of the run that the
    random-init control is the untrained start of) and ``controls`` (part -> run), so the builder
    computes the controls' paired differences exactly as the main table does.
    """
    control_rows, controls = _control_rows(plan)
    if controls:
        extra = {**extra, "control_runs": control_rows, "controls": controls}
    return _table(plan, name, rows, run_names, **extra)


def _require_runs(plan: Plan, table: str, names: list[str]) -> None:
    missing = [n for n in names if n not in plan.pretrain]
    if missing:
        raise ConfigError(f"table {table} needs pretrain runs {missing}; add them under "
                          f"pretrain.runs (known: {sorted(plan.pretrain)}).")


#: Row labels of the main table's controls, by part.
CONTROL_LABELS = {
    "reference": "control: real half A",
    "negative": "negative control: real half B",
    "positive": "positive control: noise",
    "random_init": "control: random init",
}


def _control_rows(plan: Plan) -> tuple[dict, dict[str, str]]:
    """The main table's control rows by run, and the run of each part (empty without).

    With the random-init control, ``controls["trained"]`` names the run it is the untrained
    start of (``controls.run``, ``real`` by default), whose row comes first: the two are
    compared.
    """
    from synreal.plan_jobs import CONTROL_RUNS, RANDOM_INIT_RUN

    rows, controls = {}, {}
    if RANDOM_INIT_RUN in plan.pretrain:
        trained = (plan.config.get("controls") or {}).get("run", "real")
        rows[trained] = _run_row(plan, trained, {"pretraining data": trained})
        controls["trained"] = trained
    for part in plan.controls:
        run = CONTROL_RUNS[part][0]
        rows[run] = _run_row(plan, run, {"pretraining data": CONTROL_LABELS[part]})
        controls[part] = run
    if RANDOM_INIT_RUN in plan.pretrain:
        rows[RANDOM_INIT_RUN] = _run_row(plan, RANDOM_INIT_RUN,
                                         {"pretraining data": CONTROL_LABELS["random_init"]})
        controls["random_init"] = RANDOM_INIT_RUN
    return rows, controls


def main_table(plan: Plan) -> TableJob:
    """The proposal: real vs synthetic pretraining (runs named real and synthetic).

    With ``controls`` on, the control runs follow as rows; each control is compared, paired by
    seed and test image, with the control reference (real half A), which its Finding reads
    first. The random-init control is compared with the real run (what pretraining added).
    """
    _require_runs(plan, "main", ["real", "synthetic"])
    rows = {label: _run_row(plan, label, {"pretraining data": label})
            for label in ("real", "synthetic")}
    control_rows, controls = _control_rows(plan)
    rows.update(control_rows)  # "real" keeps its place; another run random init copies follows
    counts = {name: len(row["replicates"]) for name, row in rows.items()}
    if len(set(counts.values())) > 1:
        raise ConfigError(f"table main pairs its runs by seed, but they have different numbers "
                          f"of seeds {counts}; list real and synthetic (or neither) in "
                          "replicates.runs.")
    return _table(plan, "main", rows, ["real", "synthetic"], controls=controls)


#: The main table's runs, preferred wherever a table needs one real or synthetic-only run.
MAIN_RUNS = ("real", "synthetic")


def _real_fraction(job: Job) -> float | None:
    data = job.params["data"]
    return {"real": 1.0, "synthetic": 0.0}.get(data["source"], data.get("real_fraction")) \
        if data["source"] in ("real", "synthetic", "mix") else None


def mix_ratio_table(plan: Plan) -> TableJob:
    """Syn2Co Fig. 3: share of real images at equal total, from every real/synthetic/mix run."""
    by_fraction: dict[float, str] = {}
    # the runs named real and synthetic (main's) are the curve's ends, whatever else trains
    # on one source alone (MixDiff's synthetic_var) and wherever the config lists it
    ends_first = sorted(plan.pretrain.items(), key=lambda item: item[0] not in MAIN_RUNS)
    for name, job in ends_first:
        fraction = _real_fraction(job)
        if fraction is not None and name in plan.config["pretrain"]["runs"]:
            by_fraction.setdefault(fraction, name)
    if len(by_fraction) < 3:
        raise ConfigError("table mix_ratio needs at least three pretrain runs with different "
                          "real shares (real, synthetic and source: mix with real_fraction); "
                          f"found {sorted(by_fraction)}.")
    rows = {}
    for fraction in sorted(by_fraction):
        name = by_fraction[fraction]
        rows[name] = _run_row(plan, name, {"real %": round(100 * fraction), "run": name})
    return _controls_first(plan, "mix_ratio", rows, list(rows), paper_source=(
        "Syn2Co Fig. 3 (MoBY on DeiT-S and Swin-T, not DINO; ImageNet-100 linear top-1 "
        "rises with the real share; values only in the figure)"))


def _synthetic_only_run(plan: Plan, mixdiff_runs: list[str]) -> str:
    """The run that pretrains on the MixDiff runs' synthetic set alone (one-sentence error)."""
    runs = plan.config["pretrain"]["runs"]
    sets = sorted({runs[name]["synthetic"] for name in mixdiff_runs})
    if len(sets) > 1:
        raise ConfigError(f"table mixdiff_views compares view splits of one synthetic set, but "
                          f"the MixDiff runs use {sets}; give them one synthetic dataset.")
    matches = [name for name, run in runs.items()
               if run["source"] == "synthetic" and run.get("synthetic") == sets[0]]
    if not matches:
        raise ConfigError(f"table mixdiff_views needs DINO on the MixDiff runs' synthetic set "
                          f"alone (MixDiff's DINO+Syn row); add a run such as "
                          f"pretrain.runs.synthetic_var: {{source: synthetic, synthetic: "
                          f"{sets[0]}}}.")
    return "synthetic" if "synthetic" in matches else matches[0]


def mixdiff_views_table(plan: Plan) -> TableJob:
    """MixDiff Table 7: real only, synthetic only, and each MixDiff view split.

    The synthetic-only row is DINO on the MixDiff runs' own synthetic set (the image
    variations), as the paper's DINO+Syn row is, not the study's text-to-image clone.
    """
    _require_runs(plan, "mixdiff_views", ["real"])
    views = {name: job.params["data"]["views"] for name, job in plan.pretrain.items()
             if job.params["data"]["source"] == "mixdiff"}
    if not views:
        raise ConfigError("table mixdiff_views needs pretrain runs with source: mixdiff "
                          "(one per view split, e.g. views real 1+6 / synthetic 1+2).")
    only_synthetic = _synthetic_only_run(plan, list(views))
    table = paper_numbers.MIXDIFF_TABLE7
    rows = {}
    for name, run in (("real", "real"), ("synthetic", only_synthetic)):
        # the run's own crops: 2 global + its local_crops_number
        local = plan.pretrain[run].params["dino"]["local_crops_number"]
        crops, key = f"2+{local}", (2, local, 0, 0) if name == "real" else (0, 0, 2, local)
        rows[name] = _run_row(plan, run, {
            "pretraining data": name,
            "real views (global+local)": crops if name == "real" else "0",
            "synthetic views (global+local)": crops if name == "synthetic" else "0"},
            paper_numbers.paper_cell(table, key))
    for name, v in views.items():
        key = (v["real_global"], v["real_local"], v["synthetic_global"], v["synthetic_local"])
        rows[name] = _run_row(plan, name, {
            "pretraining data": f"MixDiff ({name})",
            "real views (global+local)": f"{v['real_global']}+{v['real_local']}",
            "synthetic views (global+local)": f"{v['synthetic_global']}+{v['synthetic_local']}",
        }, paper_numbers.paper_cell(table, key))
    return _controls_first(plan, "mixdiff_views", rows, ["real", *views],
                           paper_source=table["source"])


def realtune_table(plan: Plan) -> TableJob:
    """SynBench Table 10: {real, synthetic}-pretrained x {vanilla, SynTune, RealTune} (ssl)."""
    settings = plan.config.get("realtune") or {}
    if not settings.get("ssl"):
        raise ConfigError("table realtune needs a realtune.ssl section (the RealTune and "
                          "SynTune data).")
    table = paper_numbers.REALTUNE_TABLE10
    rows = {}
    for run in settings["runs"]:
        rows[f"{run}/vanilla"] = _run_row(plan, run, {"pretrained on": run, "tuning": "vanilla"},
                                          paper_numbers.paper_cell(table, (run, "vanilla")))
        for role, tuning in (("synthetic", "SynTune"), ("real", "RealTune")):
            key = (run, "ssl", role)
            rows[f"{run}/{tuning}"] = _tuned_row(
                plan, key, {"pretrained on": run, "tuning": tuning},
                paper_numbers.paper_cell(table, (run, tuning)))
    return _controls_first(plan, "realtune", rows, list(settings["runs"]),
                           paper_source=table["source"])


def pretrain_finetune_table(plan: Plan) -> TableJob:
    """SynBench Table 3: pretraining {real, synthetic, mix} x fine-tuning {none, syn, real}."""
    settings = plan.config.get("realtune") or {}
    if not settings.get("supervised"):
        raise ConfigError("table pretrain_finetune needs a realtune.supervised section (the "
                          "synthetic downstream images for SynTune).")
    mix = mix_run(plan)
    _require_runs(plan, "pretrain_finetune", ["real", "synthetic", mix])
    table = paper_numbers.PRETRAIN_FINETUNE_TABLE3
    rows = {}
    for label, run in (("real", "real"), ("synthetic", "synthetic"), ("mix", mix)):
        rows[f"{label}/none"] = _run_row(plan, run, {"pretraining": label, "fine-tuning": "none"},
                                         paper_numbers.paper_cell(table, (label, "none")))
        for role in ("synthetic", "real"):
            key = (run, "supervised", role)
            row = _row(plan, plan.tuned_replicate_evaluations[key], plan.replicates[run],
                       {"pretraining": label, "fine-tuning": role},
                       paper_numbers.paper_cell(table, (label, role)), _data_text(plan, run))
            for replicate, tuned in zip(row["replicates"], plan.tuned_replicates[key],
                                        strict=True):
                replicate["finetune"] = tuned.out_dir
            row["finetune"] = row["replicates"][0]["finetune"]
            rows[f"{label}/{role}"] = row
    return _controls_first(plan, "pretrain_finetune", rows, ["real", "synthetic", mix],
                  paper_source=table["source"])


def synbench_table(plan: Plan) -> TableJob:
    """SynBench measures of every audited dataset."""
    if not plan.audits:
        raise ConfigError("table synbench needs an 'audit' section naming the datasets.")
    audits = dict(plan.audits)
    generator = (plan.config.get("cfg_sweep") or {}).get("generator")
    for scale, (_, audit, _) in sorted(plan.cfg.items()):
        if audit.key not in {job.key for job in audits.values()}:
            audits[f"{generator}@cfg{scale}"] = audit
    return TableJob("synbench", {
        "study": plan.config["study"]["name"],
        "audits": {name: job.out_dir for name, job in audits.items()},
        "order": list(audits),
    }, sorted({job.target for job in audits.values()}))


def cfg_table(plan: Plan) -> TableJob:
    """Guidance sweep: audit measures and downstream metrics per CFG scale."""
    if not plan.cfg:
        raise ConfigError("table cfg needs a cfg_sweep section (generator and scales).")
    name = plan.config["cfg_sweep"]["generator"]
    rows, needs, facts = {}, [], {}
    for scale, (generator, audit, pretrain) in sorted(plan.cfg.items()):
        artifacts = {"generate": generator.out_dir, "audit": audit.out_dir}
        described = {}
        if pretrain is not None:
            evaluation = plan.evaluations[f"cfg{scale}"]
            artifacts.update({"pretrain": pretrain.out_dir,
                              **{stage: job.out_dir for stage, job in evaluation.items()}})
            described = {"labels": {"CFG scale": scale}, "label_columns": ["CFG scale"],
                         "data": _generator_job_text(name, generator)}
            facts = facts or {"facts": run_facts(plan.config, pretrain, evaluation)}
        rows[str(scale)] = {**artifacts, **described}
        needs += artifacts.values()
    own = plan.generators[name].params["cfg_scale"]
    pretrained = (plan.cfg.get(float(own)) or (None, None, None))[2]
    main_synthetic = plan.replicates.get("synthetic") or []
    same = (pretrained is not None and bool(main_synthetic)
            and pretrained.key == main_synthetic[0].key)
    return TableJob("cfg", {"study": plan.config["study"]["name"], "runs": rows,
                            "order": list(rows), "generator": name,
                            "main_synthetic_scale": own if same else None, **facts},
                    sorted(set(needs)))


BUILDERS = {
    "main": main_table,
    "synbench": synbench_table,
    "mix_ratio": mix_ratio_table,
    "mixdiff_views": mixdiff_views_table,
    "realtune": realtune_table,
    "pretrain_finetune": pretrain_finetune_table,
    "cfg": cfg_table,
}


@dataclass(frozen=True)
class FiguresJob:
    """The report's figures (``results/figures``): what to copy or draw, and from where."""

    params: dict
    needs: list[str]

    def spec_json(self) -> str:
        """The spec as compact JSON (the CLI's ``--spec-json``)."""
        return json.dumps({"stage": "figures", "params": self.params}, sort_keys=True)


def figures_job(plan: Plan) -> FiguresJob:
    """Loss curves, confusion matrices, retrieval grids, audit plots, samples, attention."""
    models = {name: job for name, job in plan.pretrain.items()
              if name in plan.config.get("pretrain", {}).get("runs", {})}
    models |= {f"{run}-{mode}-{role}": job for (run, mode, role), job in plan.tuned.items()}
    evaluations = {name: plan.evaluations[name] for name in models if name in plan.evaluations}
    evaluations |= {f"{run}-{mode}-{role}": jobs
                    for (run, mode, role), jobs in plan.tuned_evaluations.items()}
    copied = {
        "loss": {name: job.out_dir for name, job in models.items()
                 if job.stage == "pretrain" or job.params["tune"]["mode"] == "ssl"},
        "confusion": {name: jobs["probe"].out_dir for name, jobs in evaluations.items()},
        "retrieval": {name: jobs["retrieval"].out_dir for name, jobs in evaluations.items()},
    }
    audits = dict(plan.audits)
    generator = plan.config.get("cfg_sweep", {}).get("generator")
    audits |= {f"{generator}@cfg{scale}": audit for scale, (_, audit, _) in plan.cfg.items()}
    for kind in ("audit_scale", "audit_brightness", "audit_person_blocking",
                 "audit_consistency"):
        copied[kind] = {name: job.out_dir for name, job in audits.items()}
    samples = {}
    for name, generator in plan.config["generators"].items():
        real = plan.datasets[generator["like"]]
        entry = samples.setdefault(generator["like"], {
            "real": f"{real.out_dir}/manifest.parquet", "synthetic": {}})
        entry["synthetic"][name] = f"{plan.generators[name].out_dir}/manifest.parquet"
    params = {"copied": copied, "samples": samples, "seed": plan.config["study"]["seed"]}
    needs = [job.target for job in [*models.values(), *audits.values(),
                                       *plan.datasets.values(), *plan.generators.values()]]
    needs += [jobs[stage].target for jobs in evaluations.values()
              for stage in ("probe", "retrieval")]
    if "evaluation" in plan.config and models:
        dataset = plan.datasets[plan.config["evaluation"]["dataset"]]
        split = next(iter(evaluations.values()))["probe"].params["test_split"]
        main = [name for name in ("real", "synthetic") if name in models] or list(models)[:2]
        params["attention"] = {"manifest": f"{dataset.out_dir}/manifest.parquet",
                               "split": split, "images": 4,
                               "models": {name: models[name].out_dir for name in main}}
    files = {}
    if "mix_ratio" in plan.tables:
        files["mix_ratio__curve"] = "results/tables/mix_ratio.png"
        needs.append("results/tables/mix_ratio.md")
    for name in ("main", "mix_ratio", "mixdiff_views", "realtune",
                 "pretrain_finetune"):  # each seed's value
        table = plan.tables.get(name)
        if table and any(len(row["replicates"]) > 1 for row in table.params["runs"].values()):
            files[f"seeds__{name}"] = f"results/tables/{name}_seeds.png"
            needs.append(f"results/tables/{name}.md")
    if files:
        params["files"] = files
    return FiguresJob(params, sorted(set(needs)))


def datasets_table(plan: Plan) -> TableJob:
    """Every dataset the study reads or makes, and how each was made.

    The real datasets, every generator's set, the guidance sweep's other scales and the
    control sets (half A, half B, half B as noise). ``made`` says how a real dataset or a
    control set was made; a generated set's settings are read from its artifact's spec when
    the table is built (synreal.report.made_by).
    """
    real = {name: job.out_dir for name, job in plan.datasets.items()}
    made = {name: _real_text(plan, name) for name in plan.datasets}
    made_sets = {name: job.out_dir for name, job in plan.generators.items()}
    generator = (plan.config.get("cfg_sweep") or {}).get("generator")
    for scale, (job, _, _) in sorted(plan.cfg.items()):
        if job.out_dir not in made_sets.values():
            made_sets[f"{generator}@cfg{scale}"] = job.out_dir  # the audits' name for it
    copied = (plan.config.get("controls") or {}).get("run", "real")
    for part, job in plan.controls.items():
        run = plan.config["pretrain"]["runs"][copied]
        name = f"control {part}"
        made_sets[name] = job.out_dir
        made[name] = CONTROL_DATA[CONTROL_RUNS[part][0]].format(real=run["real"])
    # the spec's JSON sorts dict keys: the rows' order (real, generators, sweep, controls)
    # travels as a list
    params = {"study": plan.config["study"]["name"], "datasets": real, "synthetic": made_sets,
              "made": made, "order": [*real, *made_sets]}
    return TableJob("datasets", params, [*real.values(), *made_sets.values()])


def _real_text(plan: Plan, name: str) -> str:
    """How real dataset ``name`` came to be: the toy world's renderer, or a folder ingested."""
    dataset, ingest = plan.config["datasets"][name], plan.datasets[name]
    source = ingest.upstream["dataset"]
    if source.startswith("toyworld/"):
        world = plan.job("toyworld", source.split("/", 1)[1]).params
        return (f"the toy world's renderer in the {world['layout']} layout: object scale "
                f"{tuple(world['scale'])}, brightness {tuple(world['brightness'])}, occlusion "
                f"{world['occlusion_prob']:g}")
    return (f"{dataset['path']} ingested as released (unreadable files: "
            f"{dataset['on_corrupt']})")


def add_tables(plan: Plan) -> None:
    """Add the datasets table and every configured table."""
    plan.tables["datasets"] = datasets_table(plan)
    for name in plan.config["tables"]:
        if name in BUILDERS:
            plan.tables[name] = BUILDERS[name](plan)
    plan.figures = figures_job(plan)
