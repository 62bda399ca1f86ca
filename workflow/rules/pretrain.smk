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
    resources:
        **stage_resources("pretrain"),
    shell:
        f"{RUN} {{params.launch}} pretrain --spec-json {{params.spec:q}} "
        "--out results/pretrain/{wildcards.key} > {log} 2>&1"
