# Phase 3: the evaluation suite for the base model and every trained run; compare.


rule eval_model:
    input:
        unpack(get_eval_inputs),
    output:
        **step_output("eval-model"),
    log:
        LOG("eval_model", "{model}"),
    benchmark:
        BENCH("eval_model", "{model}")
    conda:
        "../../envs/teachable.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    params:
        **step_params("eval-model"),
    shell:
        step_shell(
            "eval-model",
            "--model-id {wildcards.model}",
            env="OMP_NUM_THREADS={threads}",
        )


rule benchmark_model:
    input:
        **step_input("benchmark"),
    output:
        **step_output("benchmark"),
    log:
        LOG("benchmark_model", "{model}"),
    conda:
        "../../envs/teachable.yaml"
    params:
        **step_params("benchmark"),
    shell:
        step_shell("benchmark", "--model-id {wildcards.model}")


rule eval_summary:
    input:
        **step_input(
            "eval-summary",
            rollouts=lambda wc: expand(
                R(EVAL_ROLLOUTS.path), model=[BASE_MODEL_ID, *get_trained_runs()]
            ),
        ),
    output:
        **step_output(
            "eval-summary", tables=[R(t.path) for t in PHASE3_TABLES.values()]
        ),
    log:
        LOG("eval_summary"),
    benchmark:
        BENCH("eval_summary")
    conda:
        "../../envs/teachable.yaml"
    params:
        **step_params("eval-summary"),
    shell:
        step_shell("eval-summary")


rule compare_run:
    input:
        **step_input("compare", rollouts=R(ALL_EVAL_ROLLOUTS.path)),
    output:
        **step_output("compare"),
    log:
        LOG("compare_run", "{run}"),
    conda:
        "../../envs/teachable.yaml"
    params:
        **step_params("compare"),
    shell:
        step_shell("compare", "--baseline base --model {wildcards.run}")
