# SynBench data audits: every synthetic dataset against the real one it matches.


rule audit:
    input:
        upstream_done("audit"),
    output:
        directory("results/audit/{key}"),
    params:
        cli=SYNREAL,
        spec=spec_of("audit"),
    log:
        "results/logs/audit/{key}.log",
    benchmark:
        "results/benchmarks/audit/{key}.tsv"
    conda:
        "../../envs/generate.yaml"
    threads: config["resources"]["audit"]["threads"]
    resources:
        **stage_resources("audit"),
    shell:
        f"{RUN} {{params.cli}} audit --spec-json {{params.spec:q}} "
        "--out results/audit/{wildcards.key} > {log} 2>&1"
