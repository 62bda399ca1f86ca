# synreal: is synthetic data as good as real data for self-supervised pretraining?
# Thin on purpose: config, validation, rule files, final targets. All logic lives in src/synreal.
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from synreal.errors import SynrealError
from synreal.study import enable_warm_starts, limit_local_gpus, load_study


# A study file (--configfile) is a whole study, never merged over the demo; without one the
# demo study (config/config.yaml) runs. --config rehearsal=true rehearses the study on a CPU
# in rehearsal/<study>/ (synreal.rehearsal).
if not workflow.overwrite_configfiles:
    workflow.configfile(str(Path(workflow.basedir) / "config" / "config.yaml"))


report: "workflow/report/workflow.rst"


try:
    STUDY = load_study(config, workflow.overwrite_configfiles, quiet=not workflow.is_main_process)
    if STUDY.workdir is not None:
        # also under --directory (the user's, or a cluster job's), which workdir() obeys instead
        workflow.workdir(str(STUDY.workdir))
        os.chdir(STUDY.workdir)
    config.clear()
    config.update(STUDY.config)
    PLAN = STUDY.build_plan()
    REHEARSAL = STUDY.rehearsal
except SynrealError as error:
    # One sentence naming the key and the fix; no traceback, no job started.
    print(f"synreal config error: {error}", file=sys.stderr)
    sys.exit(2)


# One host: never more concurrent GPU jobs than GPUs, each on its own (synreal.gpu_slots). Set
# when the run starts: only then is it known to run here (not on Slurm) and not a dry run.
USER_GPU_LIMIT = "gpu" in workflow.global_resources.keys()


onstart:
    limit_local_gpus(workflow, config, REHEARSAL, USER_GPU_LIMIT)
    enable_warm_starts(workflow, config, REHEARSAL)


include: "workflow/rules/common.smk"
include: "workflow/rules/toyworld.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/audit.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/realtune.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        expand("results/tables/{name}.md", name=config["tables"]),
        "results/figures",
    default_target: True
