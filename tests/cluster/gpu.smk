# GPU requests on the local test cluster (scripts/slurm-local.sh advertises one "testgpu").
# Each rule records what Slurm gave the job; the rules differ only in what they ask for.


rule gpu_visible:
    output:
        "gpu/visible.txt",
    resources:
        gpu=1,
        gpu_model="testgpu",
        runtime=5,
        mem_mb=100,
    shell:
        'echo "CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES-unset}}" > {output}; '
        'echo "SLURM_JOB_ID=${{SLURM_JOB_ID-unset}}" >> {output}'


rule cpu_visible:
    output:
        "gpu/cpu_only.txt",
    resources:
        runtime=5,
        mem_mb=100,
    shell:
        'echo "CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES-unset}}" > {output}; '
        'echo "SLURM_JOB_ID=${{SLURM_JOB_ID-unset}}" >> {output}'


rule gpu_too_many:
    output:
        "gpu/too_many.txt",
    resources:
        gpu=3,
        gpu_model="testgpu",
        runtime=5,
        mem_mb=100,
    shell:
        "touch {output}"


rule gpu_unknown_model:
    output:
        "gpu/unknown_model.txt",
    resources:
        gpu=1,
        gpu_model="nosuchgpu",
        runtime=5,
        mem_mb=100,
    shell:
        "touch {output}"
