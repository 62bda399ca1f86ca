"""Resolve a validated study config into the DAG of content-keyed stage runs.

This is the single place where config becomes specs: each :class:`Job` carries the stage,
its resolved params, the keys of its upstream artifacts and the paths it reads. Snakemake
rules (``workflow/rules/common.smk``) look jobs up here by key, so the workflow files hold
no science and two tables that need the same artifact share one job and one directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from synreal.errors import ConfigError
from synreal.fingerprint import folder_fingerprint
from synreal.keys import content_key
from synreal.stages import get_stage

RESULTS = "results"


@dataclass(frozen=True)
class Job:
    """One content-keyed stage run.

    Attributes:
        stage: stage name.
        params: resolved parameters (part of the key).
        upstream: role -> ``<stage>/<key>`` of an input artifact, or a dataset fingerprint.
        inputs: role -> path the stage reads (not part of the key: the upstream keys are).
    """

    stage: str
    params: dict
    upstream: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def version(self) -> int:
        """The stage's logic version."""
        return get_stage(self.stage).version

    @cached_property
    def key(self) -> str:
        """Content key of this run (computed once: params and upstream are not changed)."""
        return content_key(self.stage, self.version, self.params, self.upstream)

    @property
    def ref(self) -> str:
        """``<stage>/<key>``: how downstream jobs name this artifact."""
        return f"{self.stage}/{self.key}"

    @property
    def out_dir(self) -> str:
        """The artifact directory, relative to the working directory."""
        return f"{RESULTS}/{self.stage}/{self.key}"

    @property
    def target(self) -> str:
        """The Snakemake output of this job: the artifact directory, renamed into place whole.

        A directory (not its ``spec.json``) so that Snakemake's between-workflow output cache
        can store and restore the whole artifact (docs/cluster.md).
        """
        return self.out_dir

    def spec(self) -> dict:
        """The resolved spec passed to the stage and stored beside its outputs."""
        return {"stage": self.stage, "version": self.version, "key": self.key,
                "params": self.params, "upstream": self.upstream, "inputs": self.inputs}

    def spec_json(self) -> str:
        """The spec as compact JSON (the CLI's ``--spec-json``)."""
        return json.dumps(self.spec(), sort_keys=True)


@dataclass(frozen=True)
class TableJob:
    """One paper table: rebuilt whenever an artifact it reads changes (not content-keyed).

    Attributes:
        name: table name; outputs are ``results/tables/<name>.{md,csv,tex}``.
        params: what the table builder needs (artifact directories by role, captions).
        needs: the directories of every artifact the table reads (Snakemake inputs).
    """

    name: str
    params: dict
    needs: list[str]

    def spec_json(self) -> str:
        """The table spec as compact JSON (the CLI's ``--spec-json``).

        It carries the table stage's code version, so a change to how tables are written
        rebuilds them (Snakemake reruns a job whose params changed).
        """
        from synreal.stages.tables import STAGE

        return json.dumps({"stage": "table", "version": STAGE.version, "table": self.name,
                           "params": self.params}, sort_keys=True)


@dataclass
class Plan:
    """Every job of a study, by stage and key, plus the inputs of each table."""

    config: dict
    jobs: dict[str, dict[str, Job]] = field(default_factory=dict)
    datasets: dict[str, Job] = field(default_factory=dict)
    generators: dict[str, Job] = field(default_factory=dict)
    pretrain: dict[str, Job] = field(default_factory=dict)
    evaluations: dict[str, dict[str, Job]] = field(default_factory=dict)
    audits: dict[str, Job] = field(default_factory=dict)
    #: (pretrain run, mode, tuning data role) -> realtune job, e.g. ("real", "ssl", "real")
    tuned: dict[tuple[str, str, str], Job] = field(default_factory=dict)
    #: (pretrain run, mode, tuning data role) -> its frozen evaluation jobs
    tuned_evaluations: dict[tuple[str, str, str], dict[str, Job]] = field(
        default_factory=dict)
    #: the replicate seeds' values (``replicates``); one entry when the study has one seed
    seeds: list[int] = field(default_factory=list)
    #: run name -> its pretraining job per replicate seed (the first is ``pretrain[name]``)
    replicates: dict[str, list[Job]] = field(default_factory=dict)
    #: run name -> its frozen evaluation jobs per replicate seed
    replicate_evaluations: dict[str, list[dict[str, Job]]] = field(default_factory=dict)
    #: (run, mode, role) -> realtune job per replicate seed of its pretraining run
    tuned_replicates: dict[tuple[str, str, str], list[Job]] = field(default_factory=dict)
    #: (run, mode, role) -> frozen evaluation jobs per replicate seed
    tuned_replicate_evaluations: dict[tuple[str, str, str], list[dict[str, Job]]] = field(
        default_factory=dict)
    #: control part (reference, negative, positive) -> its dataset job (``controls``)
    controls: dict[str, Job] = field(default_factory=dict)
    #: the report's figures (a :class:`synreal.plan_tables.FiguresJob`)
    figures: object = None
    #: guidance scale -> (generator job, audit job, pretrain job or None)
    cfg: dict[float, tuple[Job, Job | None, Job | None]] = field(default_factory=dict)
    tables: dict[str, TableJob] = field(default_factory=dict)

    def add(self, job: Job) -> Job:
        """Register ``job`` (idempotent: an identical job is stored once)."""
        self.jobs.setdefault(job.stage, {})[job.key] = job
        return job

    def job(self, stage: str, key: str) -> Job:
        """Look a job up by stage and key (used by Snakemake input functions)."""
        return self.jobs[stage][key]

    def keys(self, stage: str) -> list[str]:
        """All keys of ``stage`` in this plan."""
        return sorted(self.jobs.get(stage, {}))


def _dataset_jobs(plan: Plan, name: str, dataset: dict) -> Job:
    config = plan.config
    if "toyworld" in dataset:
        world = config["toyworld"]
        render = plan.add(Job("toyworld", {
            "layout": dataset["format"],
            "per_class": dataset["toyworld"],
            "image_size": world["image_size"],
            "scale": world["scale"],
            "brightness": world["brightness"],
            "occlusion_prob": world["occlusion_prob"],
            "seed": config["study"]["seed"],
        }))
        upstream = {"dataset": render.ref}
        root = f"{render.out_dir}/data"
    else:
        root = dataset["path"]
        upstream = {"dataset": folder_fingerprint(Path(root))}
    return plan.add(Job("ingest", {"format": dataset["format"],
                                   "on_corrupt": dataset["on_corrupt"]},
                        upstream, {"root": root}))


def _generator_job(plan: Plan, name: str, generator: dict) -> Job:
    from synreal.stages.generate import resolve

    if generator["like"] not in plan.datasets:
        raise ConfigError(f"generators.{name}.like: no dataset called {generator['like']!r}; "
                          f"known datasets: {sorted(plan.datasets)}.")
    real = plan.datasets[generator["like"]]
    return plan.add(Job("generate", resolve(generator["params"]), {"like": real.ref},
                        {"manifest": f"{real.out_dir}/manifest.parquet"}))


#: Train/test split names of each dataset layout (the downstream protocol's splits).
SPLITS = {"oxford_pet": ("trainval", "test"), "afhq": ("train", "test"),
          "imagefolder": ("train", "test")}


def _dataset_ref(plan: Plan, name: str, where: str) -> Job:
    """A real (``datasets``) or synthetic (``generators``) dataset job by name."""
    found = plan.datasets.get(name) or plan.generators.get(name)
    if found is None:
        known = sorted([*plan.datasets, *plan.generators])
        raise ConfigError(f"{where}: no dataset or generator called {name!r}; known: {known}.")
    return found


def replicate_seed(seed: int, replicate: int, seeds: list[int] | None) -> int:
    """The seed of replicate ``replicate`` of a job whose own seed is ``seed``.

    ``seeds`` (``replicates`` given as a list) names them; otherwise replicate ``i`` adds
    ``i``, so replicate 0 keeps the job's own seed and its single-seed key.
    """
    return seeds[replicate] if seeds is not None else seed + replicate


def _pretrain_job(plan: Plan, name: str, run: dict, replicate: int = 0,
                  datasets: dict[str, Job] | None = None) -> Job:
    """Pretraining run ``name``'s job for one replicate seed (``datasets``: role -> job)."""
    from synreal.config import replicate_seeds
    from synreal.stages.pretrain import resolve

    settings = plan.config["pretrain"]
    upstream, inputs = {}, {}
    for role in ("real", "synthetic"):
        if datasets and role in datasets:
            job = datasets[role]
        elif role in run:
            job = _dataset_ref(plan, run[role], f"pretrain.runs.{name}.{role}")
        else:
            continue
        upstream[role], inputs[role] = job.ref, f"{job.out_dir}/manifest.parquet"
    params = resolve({**settings["params"], **run.get("params", {})}, run, name)
    seeds, _, _ = replicate_seeds(plan.config)
    params["dino"]["seed"] = replicate_seed(params["dino"]["seed"], replicate, seeds)
    return plan.add(Job("pretrain", params, upstream, inputs))


def replicated_runs(config: dict) -> set[str]:
    """Names of the pretraining runs that run once per replicate seed."""
    from synreal.config import replicate_seeds

    _, count, runs = replicate_seeds(config)
    names = set((config.get("pretrain") or {}).get("runs", {}))
    if count < 2:
        return set()
    return set(runs) & names if runs is not None else names


def _replicated(plan: Plan, name: str, run: dict, datasets: dict[str, Job] | None = None,
                like: str | None = None) -> None:
    """Every replicate of run ``name`` (those of run ``like``: its seeds) and their evaluations."""
    from synreal.config import replicate_seeds

    _, count, _ = replicate_seeds(plan.config)
    copies = count if (like or name) in replicated_runs(plan.config) else 1
    jobs = [_pretrain_job(plan, name, run, i, datasets) for i in range(copies)]
    plan.replicates[name] = jobs
    plan.replicate_evaluations[name] = [_evaluation_jobs(plan, job) for job in jobs]
    plan.pretrain[name], plan.evaluations[name] = jobs[0], plan.replicate_evaluations[name][0]


def _audit_job(plan: Plan, name: str, like: str | None = None,
               dataset_job: Job | None = None) -> Job:
    """SynBench audit of one dataset; a synthetic one is compared with its real `like`."""
    from synreal.audit.params import AuditParams
    from synreal.stages.audit import EmbedderParams

    settings = plan.config.get("audit") or {"params": {}, "embedding": {}}
    job = dataset_job or _dataset_ref(plan, name, "audit.datasets")
    upstream = {"dataset": job.ref}
    inputs = {"manifest": f"{job.out_dir}/manifest.parquet"}
    reference_name = name
    if like is None and name in plan.config["generators"]:
        like = plan.config["generators"][name]["like"]
    if like is not None:
        reference_name = like
        real = plan.datasets[reference_name]
        upstream["reference"], inputs["reference"] = real.ref, f"{real.out_dir}/manifest.parquet"
    if "evaluation" in plan.config:
        test = plan.datasets[plan.config["evaluation"]["dataset"]]
        upstream["test"], inputs["test"] = test.ref, f"{test.out_dir}/manifest.parquet"
    params = {"audit": _resolved(AuditParams, {"seed": plan.config["study"]["seed"],
                                               **settings["params"]}, "audit.params"),
              "embedding": _resolved(EmbedderParams, settings["embedding"], "audit.embedding"),
              "name": name, "reference_name": reference_name}
    return plan.add(Job("audit", params, upstream, inputs))


def _evaluation_jobs(plan: Plan, checkpoint: Job, probe_images: bool = True) -> dict[str, Job]:
    """Features -> probe, knn, retrieval of one checkpoint on the evaluation dataset.

    ``probe_images``: False for a checkpoint whose linear top-1 no table reports (a
    supervised fine-tuning's: its table reads the tuned classifier): its probe runs on the
    fixed features even where ``evaluation.probe.train_on`` is ``images`` (a GPU job).
    """
    from synreal.stages.features import FeaturesParams, check_view
    from synreal.stages.knn import KnnParams
    from synreal.stages.probe import ProbeParams
    from synreal.stages.retrieval import RetrievalParams

    evaluation = plan.config["evaluation"]
    dataset = plan.datasets[evaluation["dataset"]]
    train, test = SPLITS[plan.config["datasets"][evaluation["dataset"]]["format"]]
    manifest = f"{dataset.out_dir}/manifest.parquet"
    features = plan.add(Job("features", _resolved(FeaturesParams, {
        "splits": [train, test], **evaluation["features"]}, "evaluation.features"),
        {"checkpoint": checkpoint.ref, "dataset": dataset.ref},
        {"checkpoint": checkpoint.out_dir, "manifest": manifest}))
    jobs = {"features": features}
    splits = {"probe": {"train_split": train, "test_split": test},
              "knn": {"train_split": train, "test_split": test},
              "retrieval": {"query_split": test}}
    for stage, cls in (("probe", ProbeParams), ("knn", KnnParams),
                       ("retrieval", RetrievalParams)):
        params = _resolved(cls, {**splits[stage], "seed": plan.config["study"]["seed"],
                                 **evaluation[stage]}, f"evaluation.{stage}")
        check_view(features.params, params["features"], f"evaluation.{stage}.features")
        if stage == "probe" and params["train_on"] == "images":
            if probe_images:
                jobs[stage] = _probe_images_job(plan, params, features, checkpoint, dataset)
                continue
            params = {**params, "train_on": "features"}
        jobs[stage] = plan.add(Job(stage, params, {"features": features.ref,
                                                   "dataset": dataset.ref},
                                   {"features": f"{features.out_dir}/features.parquet",
                                    "manifest": manifest}))
    return jobs


def _probe_images_job(plan: Plan, probe: dict, features: Job, checkpoint: Job,
                      dataset: Job) -> Job:
    """``evaluation.probe.train_on: images``: DINO's linear probe on augmented images.

    It reads the checkpoint for its training passes and the features job's centre-crop
    features for selection and test, and stands in the ``probe`` job's place in the tables.
    """
    from synreal.stages.probe_images import ProbeImagesParams

    same = ("features", "dino_base_lrs", "dino_epochs", "dino_batch_size", "train_split",
            "test_split", "val_fraction", "seed", "bootstrap_resamples")
    values = {**{k: probe[k] for k in same},
              **{k: features.params[k] for k in ("n_last_blocks", "avgpool", "num_workers")}}
    params = _resolved(ProbeImagesParams, values, "evaluation.probe")
    return plan.add(Job("probe_images", params, {
        "checkpoint": checkpoint.ref, "dataset": dataset.ref, "features": features.ref}, {
        "checkpoint": checkpoint.out_dir, "manifest": f"{dataset.out_dir}/manifest.parquet",
        "features": f"{features.out_dir}/features.parquet"}))


def _resolved(cls: type, values: dict, where: str) -> dict:
    from dataclasses import asdict

    from synreal.params import parse_params

    resolved = asdict(parse_params(cls, values, where))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in resolved.items()}


def build_jobs(config: dict) -> Plan:
    """Resolve a validated config (defaults filled) into its stage jobs (tables: plan.py)."""
    from synreal.config import replicate_seeds

    plan = Plan(config)
    for name, dataset in config["datasets"].items():
        plan.datasets[name] = _dataset_jobs(plan, name, dataset)
    for name, generator in config["generators"].items():
        plan.generators[name] = _generator_job(plan, name, generator)
    if config.get("pretrain"):
        if "evaluation" not in config:
            raise ConfigError("the config has pretrain runs but no 'evaluation' section; add "
                              "one naming the evaluation dataset.")
        seeds, count, _ = replicate_seeds(config)
        plan.seeds = seeds or [replicate_seed(config["study"]["seed"], i, None)
                               for i in range(count)]
        for name, run in config["pretrain"]["runs"].items():
            _replicated(plan, name, run)
        _controls(plan)
    if config.get("audit"):
        for name in config["audit"]["datasets"] or [*plan.datasets, *plan.generators]:
            plan.audits[name] = _audit_job(plan, name)
    if config.get("cfg_sweep"):
        _cfg_sweep(plan)
    if config.get("realtune"):
        _realtune(plan)
    return plan


#: The main table's control runs: part -> (run name, data role of its control dataset).
CONTROL_RUNS = {"reference": ("control_reference", "real"),
                "negative": ("control_negative", "real"),
                "positive": ("control_positive", "synthetic")}
#: The random-init control's run: the copied run's backbone and seeds, untrained.
RANDOM_INIT_RUN = "control_random_init"


def _controls(plan: Plan) -> None:
    """The control datasets and their DINO runs (``controls``), replicated like their run.

    The random-init control is a run of its own (no dataset): the copied run's recipe with
    data source ``random_init``, one per seed of that run.
    """
    from synreal.stages.control import ControlParams
    from synreal.stages.pretrain import RANDOM_INIT

    settings = plan.config.get("controls") or {}
    name = settings.get("run", "real")
    if settings.get("random_init"):
        run = plan.config["pretrain"]["runs"][name]
        _replicated(plan, RANDOM_INIT_RUN, {"source": RANDOM_INIT,
                                            "params": run.get("params", {})}, like=name)
    parts = [part for part in ("negative", "positive") if settings.get(part)]
    if not parts:
        return
    run = plan.config["pretrain"]["runs"][name]
    real = _dataset_ref(plan, run["real"], f"pretrain.runs.{name}.real")
    batch = plan.pretrain[name].params["dino"]["batch_size"]
    for part in ["reference", *parts]:
        params = _resolved(ControlParams, {"part": part, "seed": plan.config["study"]["seed"],
                                           "min_images": batch, "where": "controls"},
                           "controls")
        dataset = plan.add(Job("control", params, {"dataset": real.ref},
                               {"manifest": f"{real.out_dir}/manifest.parquet"}))
        plan.controls[part] = dataset
        run_name, role = CONTROL_RUNS[part]
        control_run = {"source": role, role: run["real"], "params": run.get("params", {})}
        _replicated(plan, run_name, control_run, {role: dataset}, like=name)


def _realtune(plan: Plan) -> None:
    """RealTune / SynTune jobs: ssl (table realtune) and supervised (table pretrain_finetune).

    One job per replicate seed of the tuned run; replicate ``i`` tunes with seed ``i`` too.
    """
    from synreal.config import replicate_seeds
    from synreal.dino.params import realtune_recipe
    from synreal.stages.pretrain import resolve
    from synreal.stages.realtune import RealtuneParams

    config = plan.config
    settings = config["realtune"]
    evaluation = config["evaluation"]
    eval_job = plan.datasets[evaluation["dataset"]]
    eval_manifest = f"{eval_job.out_dir}/manifest.parquet"
    # ssl tunes the listed runs; supervised also the mixed-data run (SynBench Table 3)
    runs = {"ssl": list(settings["runs"]), "supervised": list(dict.fromkeys(
        [*settings["runs"], mix_run(plan)])) if settings.get("supervised") else []}
    for run in dict.fromkeys(runs["ssl"] + runs["supervised"]):
        if run not in plan.pretrain:
            raise ConfigError(f"realtune.runs: no pretrain run called {run!r}; known: "
                              f"{sorted(plan.pretrain)}.")
    seed = config["study"]["seed"]
    seeds, _, _ = replicate_seeds(config)
    for mode in ("ssl", "supervised"):
        section = settings.get(mode)
        if not section:
            continue
        tune = _resolved(RealtuneParams, {"seed": seed, **section.get("params", {}),
                                          "mode": mode}, f"realtune.{mode}.params")
        data = {"real": section.get("real", evaluation["dataset"]),
                "synthetic": section["synthetic"]}
        for run, replicate, pretrain in _each_replicate(plan, runs[mode]):
            for role, name in data.items():
                source = _dataset_ref(plan, name, f"realtune.{mode}.{role}")
                params = {"tune": {**tune, "seed": replicate_seed(tune["seed"], replicate,
                                                                  seeds)}}
                upstream = {"checkpoint": pretrain.ref, "data": source.ref}
                inputs = {"checkpoint": pretrain.out_dir,
                          "data": f"{source.out_dir}/manifest.parquet"}
                if mode == "ssl":
                    dino = realtune_recipe(pretrain.params["dino"], section.get("dino", {}))
                    params["dino"] = resolve(dino, {"source": "real"}, run)["dino"]
                else:
                    upstream["dataset"], inputs["manifest"] = eval_job.ref, eval_manifest
                job = plan.add(Job("realtune", params, upstream, inputs))
                key = (run, mode, role)
                plan.tuned_replicates.setdefault(key, []).append(job)
                plan.tuned_replicate_evaluations.setdefault(key, []).append(
                    _evaluation_jobs(plan, job, probe_images=mode == "ssl"))
                plan.tuned[key] = plan.tuned_replicates[key][0]
                plan.tuned_evaluations[key] = plan.tuned_replicate_evaluations[key][0]


def _each_replicate(plan: Plan, runs: list[str]):
    """(run, replicate index, pretraining job) of every replicate seed of ``runs``."""
    for run in runs:
        for replicate, job in enumerate(plan.replicates[run]):
            yield run, replicate, job


def mix_run(plan: Plan) -> str:
    """The mixed-data run of table pretrain_finetune: configured, or the 50 % mix run."""
    settings = plan.config.get("realtune", {})
    if settings.get("mix_run"):
        return settings["mix_run"]
    for name, run in plan.config["pretrain"]["runs"].items():
        if run["source"] == "mix" and run.get("real_fraction", 0.5) == 0.5:
            return name
    raise ConfigError("table pretrain_finetune needs a mixed-data pretraining run: add a run "
                      "with source: mix (real_fraction 0.5) or name one in realtune.mix_run.")


def _cfg_sweep(plan: Plan) -> None:
    """The guidance-scale sweep: one generator, audit and (optionally) DINO run per scale."""
    from synreal.stages.pretrain import resolve

    config = plan.config
    sweep = config["cfg_sweep"]
    name = sweep["generator"]
    if name not in config["generators"]:
        raise ConfigError(f"cfg_sweep.generator: no generator called {name!r}; known: "
                          f"{sorted(config['generators'])}.")
    base = config["generators"][name]
    # the recipe of a synthetic-only run, the one on this generator's images first
    candidates = [run for run in config.get("pretrain", {}).get("runs", {}).values()
                  if run["source"] == "synthetic"]
    recipe_run = next((run for run in candidates if run.get("synthetic") == name),
                      candidates[0] if candidates else None)
    for scale in sweep["scales"]:
        generator = {**base, "params": {**base["params"], "cfg_scale": float(scale)}}
        job = _generator_job(plan, f"{name}@cfg{scale}", generator)
        # the configured scale is the generator itself: same key, same audit
        label = name if job.key == plan.generators[name].key else f"{name}@cfg{scale}"
        audit = plan.audits.get(label) or _audit_job(plan, label, like=base["like"],
                                                     dataset_job=job)
        pretrain = None
        if sweep["pretrain"] and config.get("pretrain") and recipe_run is not None:
            run = {"source": "synthetic", "params": recipe_run.get("params", {})}
            settings = config["pretrain"]
            params = resolve({**settings["params"], **run["params"]}, run, f"cfg {scale}")
            pretrain = plan.add(Job("pretrain", params, {"synthetic": job.ref},
                                    {"synthetic": f"{job.out_dir}/manifest.parquet"}))
            plan.evaluations.setdefault(f"cfg{scale}", _evaluation_jobs(plan, pretrain))
        plan.cfg[float(scale)] = (job, audit, pretrain)


def _facts(plan: Plan, run_names: list[str]) -> dict:
    """Caption facts of the first named run: see :func:`run_facts`."""
    return run_facts(plan.config, plan.pretrain[run_names[0]], plan.evaluations[run_names[0]])


def run_facts(config: dict, pretrain: Job, evaluation: dict[str, Job]) -> dict:
    """Caption facts of one pretraining job and its evaluation jobs.

    Model, epochs, recipe changes (:func:`synreal.dino.params.recipe_changes`), seed,
    evaluation sizes and protocol.
    """
    from synreal.dino.params import recipe_changes

    dino = pretrain.params["dino"]
    probe = evaluation["probe"].params
    return {"model": dino["arch"], "epochs": dino["epochs"], "recipe": recipe_changes(dino),
            "seed": config["study"]["seed"],
            "eval_dataset": config["evaluation"]["dataset"],
            "n_train": probe["train_split"], "n_test": probe["test_split"],
            "protocol": evaluation["features"].params["protocol"],
            "resamples": probe["bootstrap_resamples"]}
