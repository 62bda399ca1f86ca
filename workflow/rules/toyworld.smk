# Render the toy world (the demo's stand-in for AFHQ and Oxford-IIIT Pet) in official layouts.


rule toyworld:
    output:
        directory("results/toyworld/{key}"),
    params:
        cli=SYNREAL,
        spec=spec_of("toyworld"),
    log:
        "results/logs/toyworld/{key}.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    priority: PRIORITY["upstream"]
    resources:
        gpu=0,
        slurm_partition=config["slurm"]["cpu_partition"],
        runtime=20,
        mem_mb=2000,
    shell:
        "OMP_NUM_THREADS={threads} {params.cli} toyworld --spec-json {params.spec:q} --out results/toyworld/{wildcards.key} "
        "> {log} 2>&1"
