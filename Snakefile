# synreal: is synthetic data as good as real data for self-supervised pretraining?
# Thin on purpose: config, validation, rule files, final targets. All logic lives in src/synreal.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from synreal.config import validate_config
from synreal.errors import ConfigError
from synreal.plan import build_plan


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


try:
    config.update(validate_config(config))
    PLAN = build_plan(config)
except ConfigError as error:
    # One sentence naming the key and the fix; no traceback, no job started.
    print(f"synreal config error: {error}", file=sys.stderr)
    sys.exit(2)


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
