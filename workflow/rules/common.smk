# Keys, spec look-ups and input functions only: no science here (see src/synreal/plan.py).

import os

from synreal.launch import launcher

#: This checkout's src/, handed to every job's shell in the environment. Set here, never
#: asked of the user (so no `envvars:`); a Slurm job re-reads this file and sets it again.
#: The commands below name the variable, not the path: params enter the output cache's
#: hash, and a checkout path there would stop two checkouts sharing the cache.
os.environ.update(SYNREAL_SRC=str(Path(workflow.basedir) / "src"))
#: Puts src/ on the path inside the job's shell, after any conda activation (which blocks an
#: inherited PYTHONPATH).
SRC_ON_PATH = 'PYTHONPATH="$SYNREAL_SRC${PYTHONPATH:+:$PYTHONPATH}"'
SYNREAL = f"{SRC_ON_PATH} python -m synreal"
#: Starts every stage's command: its thread count, the GPUs its resources ask for (a GPU job
#: with no usable GPU refuses to start: synreal.gpus), and on a host of several GPUs the
#: claim of that many free ones, which the job alone then sees (synreal.gpu_slots). The
#: rehearsal runs every stage on the CPU whatever its resources say. Not a param: params
#: rerun jobs when they change, and this prefix holds no science.
_FORCE_CPU = " SYNREAL_FORCE_CPU=1" if REHEARSAL else ""
_SRC = SRC_ON_PATH.replace("{", "{{").replace("}", "}}")
RUN = (f"OMP_NUM_THREADS={{threads}} SYNREAL_GPUS={{resources.gpu}}{_FORCE_CPU} {_SRC} "
       "python -m synreal.gpu_slots {resources.gpu} -- env")
#: Scheduling priorities (higher first among ready jobs, locally and in Slurm submission
#: order): the long chain toy world/ingest/generation/controls -> DINO -> RealTune first, so its
#: last pretraining never runs alone at the end while the many short evaluations wait; every
#: other rule (features, evaluations, audits, tables) keeps 0.
PRIORITY = {"upstream": 3, "pretrain": 2, "realtune": 1}


wildcard_constraints:
    key="[0-9a-f]{12}",
    name="[a-z0-9_]+",


def spec_of(stage):
    """Input function: the resolved spec JSON of the ``stage`` job with this key."""
    return lambda wildcards: PLAN.job(stage, wildcards.key).spec_json()


def upstream_done(stage):
    """Input function: the artifact directories the ``stage`` job with this key reads.

    ``stage`` may be a wildcard pattern such as ``"{stage}"`` for rules serving several stages.
    """

    def inputs(wildcards):
        job = PLAN.job(stage.format(**wildcards), wildcards.key)
        return [f"results/{ref}" for ref in job.upstream.values() if "/" in ref]

    return inputs


def table_job(name):
    """The plan's job of table ``name``; a table the study does not define is a clear error."""
    if name not in PLAN.tables:
        raise WorkflowError(
            f"table {name!r} is not built by this study; add it to `tables` in the config "
            f"(this study builds: {sorted(PLAN.tables)})."
        )
    return PLAN.tables[name]


def stage_resources(stage):
    """A stage's scheduling resources from the study: GPUs, GPU model, partition, time, memory.

    A stage that asks for GPUs goes to the GPU partition with the study's ``gpu_model``; a
    stage with ``gpu: 0`` gets no GPU request and the CPU partition (``slurm`` in the config;
    used by the Slurm executor only).
    """
    wanted = config["resources"][stage]
    gpus = int(wanted["gpu"])
    resources = {"gpu": gpus, "runtime": wanted["runtime"], "mem_mb": wanted["mem_mb"],
                 "slurm_partition": config["slurm"]["gpu_partition" if gpus else "cpu_partition"]}
    if gpus and wanted.get("gpu_model"):
        resources["gpu_model"] = wanted["gpu_model"]
    return resources


def pretrain_resources():
    """The pretrain stage's resources, per job: the random-init control's jobs train nothing.

    They export an untrained backbone in seconds, so they ask for no GPU, the CPU partition,
    minutes and little memory (synreal.study.UNTRAINED_RESOURCES) instead of a day on a GPU
    node, which a queue would make them wait for.
    """
    from synreal.study import untrained_resources

    full = stage_resources("pretrain")
    light = untrained_resources(full, config["slurm"]["cpu_partition"])

    def per_job(name):
        return lambda wildcards: (light if trains_nothing(wildcards.key) else full)[name]

    return {name: per_job(name) for name in full}


def trains_nothing(key):
    """Whether pretrain job ``key`` is the random-init control (no data, no training step)."""
    from synreal.stages.pretrain import RANDOM_INIT

    return PLAN.job("pretrain", key).params["data"]["source"] == RANDOM_INIT


def multi_gpu_launcher(wildcards, resources):
    """``SYNREAL``, with torchrun in place of ``python`` when the job has several GPUs."""
    return f"{SRC_ON_PATH} {launcher(int(resources.gpu))}"
