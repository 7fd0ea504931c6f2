# Phase 5: the selection experiment (one trained and evaluated model per method) and its summary.


rule select_train:
    input:
        unpack(get_selection_inputs),
    output:
        **step_output("select-train"),
    log:
        LOG("select_train", "{method}"),
    benchmark:
        BENCH("select_train", "{method}")
    priority: 1
    conda:
        "../../envs/teachable.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    params:
        **step_params("select-train"),
    shell:
        step_shell(
            "select-train",
            "--method {wildcards.method}",
            env="OMP_NUM_THREADS={threads}",
        )


rule eval_selection:
    input:
        **step_input(
            "eval-model",
            model=get_student_model,
            adapter=R(SELECTION, "adapter"),
        ),
    output:
        **step_output("eval-model", rollouts=R(SELECTION, "rollouts.parquet")),
    log:
        LOG("eval_selection", "{method}"),
    benchmark:
        BENCH("eval_selection", "{method}")
    priority: 1
    conda:
        "../../envs/teachable.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    params:
        **step_params("eval-model", model_id=lambda wc: f"select_{wc.method}"),
    shell:
        step_shell(
            "eval-model",
            "--model-id {params.model_id}",
            env="OMP_NUM_THREADS={threads}",
        )


rule benchmark_selection:
    input:
        **step_input("benchmark", rollouts=R(SELECTION, "rollouts.parquet")),
    output:
        **step_output("benchmark", benchmark=R(SELECTION, "benchmark.json")),
    log:
        LOG("benchmark_selection", "{method}"),
    conda:
        "../../envs/teachable.yaml"
    params:
        **step_params("benchmark", model_id=lambda wc: f"select_{wc.method}"),
    shell:
        step_shell("benchmark", "--model-id {params.model_id}")


rule selection_summary:
    input:
        **step_input(
            "selection-summary",
            rollouts=lambda wc: expand(
                R(SELECTION, "rollouts.parquet"), method=get_selection_methods()
            ),
            selected=lambda wc: expand(
                R(SELECTED.path), method=get_selection_methods()
            ),
        ),
    output:
        **step_output("selection-summary"),
    log:
        LOG("selection_summary"),
    benchmark:
        BENCH("selection_summary")
    conda:
        "../../envs/teachable.yaml"
    params:
        **step_params("selection-summary"),
    shell:
        step_shell("selection-summary")
