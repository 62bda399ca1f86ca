# Real dataset folder -> manifest.parquet (path, label, split, sha256, size) + problems.csv.


rule ingest:
    input:
        upstream_done("ingest"),
    output:
        directory("results/ingest/{key}"),
    params:
        cli=SYNREAL,
        spec=spec_of("ingest"),
    log:
        "results/logs/ingest/{key}.log",
    benchmark:
        "results/benchmarks/ingest/{key}.tsv"
    conda:
        "../../envs/report.yaml"
    threads: config["resources"]["ingest"]["threads"]
    priority: PRIORITY["upstream"]
    resources:
        gpu=0,
        slurm_partition=config["slurm"]["cpu_partition"],
        runtime=config["resources"]["ingest"]["runtime"],
        mem_mb=config["resources"]["ingest"]["mem_mb"],
    shell:
        "OMP_NUM_THREADS={threads} {params.cli} ingest --spec-json {params.spec:q} --out results/ingest/{wildcards.key} "
        "> {log} 2>&1"
