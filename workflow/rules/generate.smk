# Synthetic dataset generation (SD / SDXL / SD image variations / toy), sharded and resumable.
# Several GPUs: torchrun starts one process per GPU and they split the shards (synreal.launch).


rule generate:
    input:
        upstream_done("generate"),
    output:
        directory("results/generate/{key}"),
    params:
        launch=multi_gpu_launcher,
        spec=spec_of("generate"),
    log:
        "results/logs/generate/{key}.log",
    cache: "omit-software"
    conda:
        "../../envs/generate.yaml"
    threads: config["resources"]["generate"]["threads"]
    priority: PRIORITY["upstream"]
    resources:
        **stage_resources("generate"),
    shell:
        f"{RUN} {{params.launch}} generate --spec-json {{params.spec:q}} --out results/generate/{{wildcards.key}} "
        "> {log} 2>&1"
