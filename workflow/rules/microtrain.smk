# Phase 1B: CPT validation by micro-training, and the gate that may stop later phases.


rule microtrain:
    input:
        **step_input("microtrain", model=get_student_model),
    output:
        **step_output("microtrain"),
    log:
        LOG("microtrain", "{shard}"),
    benchmark:
        BENCH("microtrain", "{shard}")
    conda:
        "../../envs/teachable.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    params:
        **step_params("microtrain", n_shards=config["phase1b"]["n_shards"]),
    shell:
        step_shell(
            "microtrain",
            "--shard {wildcards.shard} --n-shards {params.n_shards}",
            env="OMP_NUM_THREADS={threads}",
        )


rule micro_merge:
    input:
        **step_input("micro-merge", shards=get_micro_shards()),
    output:
        **step_output("micro-merge"),
    log:
        LOG("micro_merge"),
    benchmark:
        BENCH("micro_merge")
    conda:
        "../../envs/teachable.yaml"
    params:
        **step_params("micro-merge"),
    shell:
        step_shell("micro-merge")


rule cpt_gate:
    input:
        **step_input("cpt-gate"),
    output:
        **step_output("cpt-gate"),
    log:
        LOG("cpt_gate"),
    conda:
        "../../envs/teachable.yaml"
    params:
        **step_params("cpt-gate"),
    shell:
        step_shell("cpt-gate")
