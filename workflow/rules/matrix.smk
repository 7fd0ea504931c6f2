# Phase 2: the plan (held-out split by task, budget, which runs are trained), the LoRA matrix
# and the B3_traces baseline (one job per trained run) and its summary.


checkpoint plan_training:
    input:
        **step_input("plan-training"),
    output:
        **step_output("plan-training"),
    log:
        LOG("plan_training"),
    conda:
        "../../envs/teachable.yaml"
    params:
        **step_params("plan-training"),
    shell:
        step_shell("plan-training")


rule train_run:
    input:
        **get_gate_input(),
        **step_input("train-run", model=get_student_model),
    output:
        **step_output("train-run"),
    log:
        LOG("train_run", "{run}"),
    benchmark:
        BENCH("train_run", "{run}")
    conda:
        "../../envs/teachable.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    params:
        **step_params("train-run"),
    shell:
        step_shell(
            "train-run", "--run-id {wildcards.run}", env="OMP_NUM_THREADS={threads}"
        )


rule training_summary:
    input:
        **step_input(
            "training-summary",
            logs=lambda wc: expand(R(TRAIN_LOG.path), run=get_trained_runs()),
        ),
    output:
        **step_output("training-summary"),
    log:
        LOG("training_summary"),
    conda:
        "../../envs/teachable.yaml"
    shell:
        step_shell("training-summary")
