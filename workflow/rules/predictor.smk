# Phase 4: the teachability predictor from cheap observables, cross-validated by task; then its
# metrics (a separate rule: changing a statistic does not refit, nor retrain Phase 5's PREDICTOR).


rule predictor:
    input:
        **step_input("predictor"),
    output:
        **step_output("predictor"),
    log:
        LOG("predictor"),
    benchmark:
        BENCH("predictor")
    priority: 1
    conda:
        "../../envs/teachable.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        **step_params("predictor"),
    shell:
        step_shell("predictor", env="OMP_NUM_THREADS={threads}")


rule predictor_metrics:
    input:
        **step_input("predictor-metrics"),
    output:
        **step_output("predictor-metrics"),
    log:
        LOG("predictor_metrics"),
    benchmark:
        BENCH("predictor_metrics")
    conda:
        "../../envs/teachable.yaml"
    params:
        **step_params("predictor-metrics"),
    shell:
        step_shell("predictor-metrics")
