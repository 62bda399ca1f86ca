# Keys, spec look-ups and input functions only: no science here (see src/synreal/plan.py).

from synreal.launch import launcher

#: Puts this checkout's src/ on the path inside the job's shell (after any conda activation,
#: which blocks an inherited PYTHONPATH). A global, not a param: params enter the output
#: cache's hash, and a checkout path there would stop two checkouts sharing the cache.
SRC_ON_PATH = 'PYTHONPATH="{}${{PYTHONPATH:+:$PYTHONPATH}}"'.format(
    Path(workflow.basedir) / "src"
)
SYNREAL = f"{SRC_ON_PATH} python -m synreal"


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


def multi_gpu_launcher(wildcards, resources):
    """``python -m synreal``, or torchrun when the job has several GPUs (after SRC_ON_PATH)."""
    return launcher(int(resources.gpu))
