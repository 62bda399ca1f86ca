# RealTune / SynTune: short ssl (continue DINO) or supervised tuning of a pretrained backbone.


rule realtune:
    input:
        upstream_done("realtune"),
    output:
        directory("results/realtune/{key}"),
    params:
        cli=SYNREAL,
        spec=spec_of("realtune"),
    log:
        "results/logs/realtune/{key}.log",
    benchmark:
        "results/benchmarks/realtune/{key}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: config["resources"]["realtune"]["threads"]
    priority: PRIORITY["realtune"]
    resources:
        **stage_resources("realtune"),
    shell:
        f"{RUN} {{params.cli}} realtune --spec-json {{params.spec:q}} "
        "--out results/realtune/{wildcards.key} > {log} 2>&1"
