# Bench: a student on the bench split (README "Benchmark a student"). Not part of rule all:
# ask for results_dir/bench/{model_id}/bench_results.json by target. Two jobs: the rollouts
# (the student plays; its usage), and the statistics of them (so changing phase3.confidence or
# phase3.n_bootstrap replays nothing).


rule bench_rollouts:
    input:
        unpack(get_bench_inputs),
    output:
        episodes=R(BENCH_EPISODES.path),
        run=R("bench", "{model_id}", "bench_run.json"),
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
        cfg=lambda wc: bench_cfg_json(),
        model=lambda wc, input: (
            f"--model {input.model}" if "model" in input.keys() else ""
        ),
        adapter=lambda wc, input: (
            f"--adapter {input.adapter}" if "adapter" in input.keys() else ""
        ),
        out_dir=lambda wc, output: os.path.dirname(output.run),
    shell:
        "OMP_NUM_THREADS={threads} teachable bench-rollouts --config-json {params.cfg:q} "
        "{params.model} {params.adapter} --model-id {wildcards.model_id} "
        "--out-dir {params.out_dir} 2> {log}"


rule bench:
    input:
        episodes=R(BENCH_EPISODES.path),
        run=R("bench", "{model_id}", "bench_run.json"),
    output:
        R("bench", "{model_id}", "bench_results.json"),
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
        confidence=config["phase3"]["confidence"],
        n_bootstrap=config["phase3"]["n_bootstrap"],
        seed=config["seed"],
    shell:
        "teachable bench-results --run {input.run} --confidence {params.confidence} "
        "--n-bootstrap {params.n_bootstrap} --seed {params.seed} --out {output} 2> {log}"
