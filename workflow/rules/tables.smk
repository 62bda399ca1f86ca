# Paper tables: results/tables/<name>.{md,csv,tex}; one named target rule per table.


rule table:
    input:
        lambda wildcards: table_job(wildcards.name).needs,
    output:
        md=report(
            "results/tables/{name}.md",
            caption="../report/table.rst",
            category="Tables",
        ),
        csv="results/tables/{name}.csv",
        tex="results/tables/{name}.tex",
    params:
        cli=SYNREAL,
        spec=lambda wildcards: table_job(wildcards.name).spec_json(),
    log:
        "results/logs/tables/{name}.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    resources:
        gpu=0,
        slurm_partition=config["slurm"]["cpu_partition"],
        runtime=10,
        mem_mb=2000,
    shell:
        "OMP_NUM_THREADS={threads} {params.cli} table --spec-json {params.spec:q} --out results/tables > {log} 2>&1"


rule table_datasets:
    input:
        "results/tables/datasets.md",


rule table_main:
    input:
        "results/tables/main.md",


rule table_synbench:
    input:
        "results/tables/synbench.md",


rule table_mix_ratio:
    input:
        "results/tables/mix_ratio.md",


rule table_mixdiff_views:
    input:
        "results/tables/mixdiff_views.md",


rule table_realtune:
    input:
        "results/tables/realtune.md",


rule table_pretrain_finetune:
    input:
        "results/tables/pretrain_finetune.md",


rule table_cfg:
    input:
        "results/tables/cfg.md",
