# Bench: a student on the bench split (docs/workflow.md "Benchmark a student"). Not part of rule all:
# ask for results_dir/bench/{model_id}/bench_results.json by target. Two jobs: the rollouts
# (the student plays; its usage), and the statistics of them (so changing phase3.confidence or
# phase3.n_bootstrap replays nothing).


rule bench_rollouts:
    input:
        unpack(get_bench_inputs),
    output:
        **step_output("bench-rollouts"),
    log:
        LOG("bench_rollouts", "{model_id}"),
    benchmark:
        BENCH("bench_rollouts", "{model_id}")
    wildcard_constraints:
        model_id="|".join(EVAL_MODELS),
    conda:
        "../../envs/teachable.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    params:
        **step_params("bench-rollouts"),
    shell:
        step_shell(
            "bench-rollouts",
            "--model-id {wildcards.model_id}",
            env="OMP_NUM_THREADS={threads}",
        )


rule bench:
    input:
        **step_input("bench-results"),
        episodes=R(BENCH_EPISODES.path),
    output:
        **step_output("bench-results"),
    log:
        LOG("bench", "{model_id}"),
    wildcard_constraints:
        model_id="|".join(EVAL_MODELS),
    conda:
        "../../envs/teachable.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        **step_params("bench-results"),
    shell:
        step_shell("bench-results")
