# DINO pretraining on real / synthetic / mixed / MixDiff data; resumable from its checkpoints.


rule pretrain:
    input:
        upstream_done("pretrain"),
    output:
        "results/pretrain/{key}/spec.json",
    params:
        cli=SYNREAL,
        spec=spec_of("pretrain"),
    log:
        "results/logs/pretrain/{key}.log",
    benchmark:
        "results/benchmarks/pretrain/{key}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: config["resources"]["pretrain"]["threads"]
    resources:
        gpu=config["resources"]["pretrain"]["gpu"],
        runtime=config["resources"]["pretrain"]["runtime"],
        mem_mb=config["resources"]["pretrain"]["mem_mb"],
    shell:
        "OMP_NUM_THREADS={threads} {params.cli} pretrain --spec-json {params.spec:q} --out results/pretrain/{wildcards.key} "
        "> {log} 2>&1"
