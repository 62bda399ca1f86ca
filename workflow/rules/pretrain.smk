# DINO pretraining on real / synthetic / mixed / MixDiff data; resumable from its checkpoints.
# One GPU or none: `python -m synreal pretrain`; several GPUs of one node: the same module
# under torchrun, one process per GPU (synreal.launch). Pre-empted or timed-out jobs save a
# checkpoint and exit 75; the requeued or retried job resumes from it (docs/cluster.md).


rule pretrain:
    input:
        upstream_done("pretrain"),
    output:
        directory("results/pretrain/{key}"),
    params:
        launch=multi_gpu_launcher,
        spec=spec_of("pretrain"),
    log:
        "results/logs/pretrain/{key}.log",
    cache: "omit-software"
    conda:
        "../../envs/train.yaml"
    threads: config["resources"]["pretrain"]["threads"]
    priority: PRIORITY["pretrain"]
    resources:
        **pretrain_resources(),
    shell:
        f"{RUN} {{params.launch}} pretrain --spec-json {{params.spec:q}} "
        "--out results/pretrain/{wildcards.key} > {log} 2>&1"


# The main table's control datasets (negative: held-out real half; positive: class cues
# removed) cut from a real dataset's training split: a CPU job, before their DINO runs.
rule control:
    input:
        upstream_done("control"),
    output:
        directory("results/control/{key}"),
    params:
        cli=SYNREAL,
        spec=spec_of("control"),
    log:
        "results/logs/control/{key}.log",
    conda:
        "../../envs/report.yaml"
    threads: 1
    priority: PRIORITY["upstream"]
    resources:
        gpu=0,
        slurm_partition=config["slurm"]["cpu_partition"],
        runtime=30,
        mem_mb=2000,
    shell:
        "OMP_NUM_THREADS={threads} {params.cli} control --spec-json {params.spec:q} "
        "--out results/control/{wildcards.key} > {log} 2>&1"
