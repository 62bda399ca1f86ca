# The report's figures: results/figures/<kind>__<label>.png, shown by `snakemake --report`.


rule figures:
    input:
        lambda wildcards: PLAN.figures.needs,
    output:
        report(
            directory("results/figures"),
            patterns=["{kind}__{label}.png"],
            caption="../report/figures.rst",
            category="Figures",
            subcategory="{kind}",
            labels={"figure": "{kind}", "of": "{label}"},
        ),
    params:
        cli=SYNREAL,
        spec=lambda wildcards: PLAN.figures.spec_json(),
    log:
        "results/logs/figures.log",
    conda:
        "../../envs/eval.yaml"
    threads: 1
    resources:
        gpu=0,
        slurm_partition=config["slurm"]["cpu_partition"],
        runtime=20,
        mem_mb=4000,
    shell:
        "OMP_NUM_THREADS={threads} {params.cli} figures --spec-json {params.spec:q} "
        "--out results/figures > {log} 2>&1"
