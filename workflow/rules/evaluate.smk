# Frozen evaluation: features.parquet, then linear probe, weighted k-NN and retrieval mAP
# (and, with evaluation.probe.train_on: images, DINO's linear probe on augmented images).


rule features:
    input:
        upstream_done("features"),
    output:
        directory("results/features/{key}"),
    params:
        cli=SYNREAL,
        spec=spec_of("features"),
    log:
        "results/logs/features/{key}.log",
    benchmark:
        "results/benchmarks/features/{key}.tsv"
    conda:
        "../../envs/eval.yaml"
    threads: config["resources"]["features"]["threads"]
    resources:
        **stage_resources("features"),
    shell:
        f"{RUN} {{params.cli}} features --spec-json {{params.spec:q}} --out results/features/{{wildcards.key}} "
        "> {log} 2>&1"


rule evaluate:
    input:
        upstream_done("{stage}"),
    output:
        directory("results/{stage}/{key}"),
    params:
        cli=SYNREAL,
        spec=lambda wildcards: PLAN.job(wildcards.stage, wildcards.key).spec_json(),
    log:
        "results/logs/{stage}/{key}.log",
    wildcard_constraints:
        stage="probe|knn|retrieval",
    conda:
        "../../envs/eval.yaml"
    threads: config["resources"]["evaluate"]["threads"]
    resources:
        **stage_resources("evaluate"),
    shell:
        f"{RUN} {{params.cli}} {{wildcards.stage}} --spec-json {{params.spec:q}} "
        "--out results/{wildcards.stage}/{wildcards.key} > {log} 2>&1"


rule probe_images:
    input:
        upstream_done("probe_images"),
    output:
        directory("results/probe_images/{key}"),
    params:
        cli=SYNREAL,
        spec=spec_of("probe_images"),
    log:
        "results/logs/probe_images/{key}.log",
    benchmark:
        "results/benchmarks/probe_images/{key}.tsv"
    conda:
        "../../envs/eval.yaml"
    threads: config["resources"]["probe_images"]["threads"]
    resources:
        **stage_resources("probe_images"),
    shell:
        f"{RUN} {{params.cli}} probe_images --spec-json {{params.spec:q}} "
        "--out results/probe_images/{wildcards.key} > {log} 2>&1"
