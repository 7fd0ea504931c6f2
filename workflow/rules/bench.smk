# Bench: a student on the bench split (README "Benchmark a student"). Not part of rule all:
# ask for results_dir/bench/{model_id}/bench_results.json by target.


rule bench:
    input:
        unpack(get_bench_inputs),
    output:
        json=R("bench", "{model_id}", "bench_results.json"),
        episodes=R(BENCH_EPISODES.path),
    log:
        LOG("bench", "{model_id}"),
    benchmark:
        BENCH("bench", "{model_id}")
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
        adapter=lambda wc, input: (
            f"--adapter {input.adapter}" if "adapter" in input.keys() else ""
        ),
    shell:
        "OMP_NUM_THREADS={threads} teachable bench --config-json {params.cfg:q} "
        "--model {input.model} {params.adapter} --model-id {wildcards.model_id} "
        "--out {output.json} 2> {log}"
