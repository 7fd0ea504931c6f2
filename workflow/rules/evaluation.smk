# Phase 3: the evaluation suite for the base model and every trained run; compare.


rule eval_model:
    input:
        unpack(get_eval_inputs),
    output:
        R(EVAL_ROLLOUTS.path),
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
        cfg=lambda wc: eval_cfg_json(),
        adapter=lambda wc, input: (
            f"--adapter {input.adapter}" if "adapter" in input.keys() else ""
        ),
    shell:
        "OMP_NUM_THREADS={threads} teachable eval-model --config-json {params.cfg:q} "
        "--model {input.model} {params.adapter} --model-id {wildcards.model} "
        "--labeled {input.labeled} --heldout {input.heldout} --out {output} 2> {log}"


rule benchmark_model:
    input:
        R(EVAL_ROLLOUTS.path),
    output:
        R("phase3", "models", "{model}", "benchmark.json"),
    log:
        LOG("benchmark_model", "{model}"),
    conda:
        "../../envs/teachable.yaml"
    params:
        confidence=config["phase3"]["confidence"],
        n_bootstrap=config["phase3"]["n_bootstrap"],
        seed=config["seed"],
    shell:
        "teachable benchmark --rollouts {input} --model-id {wildcards.model} "
        "--confidence {params.confidence} --n-bootstrap {params.n_bootstrap} "
        "--seed {params.seed} --out {output} 2> {log}"


rule eval_summary:
    input:
        lambda wc: expand(
            R(EVAL_ROLLOUTS.path),
            model=[BASE_MODEL_ID, *get_trained_runs()],
        ),
    output:
        rollouts=R(ALL_EVAL_ROLLOUTS.path),
        tables=[R(t.path) for t in PHASE3_TABLES.values()],
    log:
        LOG("eval_summary"),
    benchmark:
        BENCH("eval_summary")
    conda:
        "../../envs/teachable.yaml"
    params:
        confidence=config["phase3"]["confidence"],
        n_bootstrap=config["phase3"]["n_bootstrap"],
        seed=config["seed"],
    shell:
        "teachable eval-summary --rollouts {input} --confidence {params.confidence} "
        "--n-bootstrap {params.n_bootstrap} --seed {params.seed} "
        "--out {output.rollouts} --out-tables {output.tables} 2> {log}"


rule compare_run:
    input:
        R(ALL_EVAL_ROLLOUTS.path),
    output:
        json=R("phase3", "compare", "{run}_vs_base.json"),
        md=R("phase3", "compare", "{run}_vs_base.md"),
    log:
        LOG("compare_run", "{run}"),
    conda:
        "../../envs/teachable.yaml"
    params:
        alpha=config["phase3"]["alpha"],
        confidence=config["phase3"]["confidence"],
        n_bootstrap=config["phase3"]["n_bootstrap"],
        seed=config["seed"],
    shell:
        "teachable compare --rollouts {input} --baseline base --model {wildcards.run} "
        "--alpha {params.alpha} --confidence {params.confidence} "
        "--n-bootstrap {params.n_bootstrap} --seed {params.seed} "
        "--out-json {output.json} --out-md {output.md} 2> {log}"
