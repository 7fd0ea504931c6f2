# Phase 3: the evaluation suite for the base model and every trained run; compare.


rule eval_model:
    input:
        unpack(get_eval_inputs),
    output:
        rollouts=R("phase3", "models", "{model}", "rollouts.parquet"),
        benchmark=R("phase3", "models", "{model}", "benchmark.json"),
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
        "--labeled {input.labeled} --out {output.rollouts} "
        "--out-benchmark {output.benchmark} 2> {log}"


rule eval_summary:
    input:
        expand(R("phase3", "models", "{model}", "rollouts.parquet"), model=EVAL_MODELS),
    output:
        rollouts=R("phase3", "rollouts.parquet"),
        tables=expand(R("phase3", "{table}.csv"), table=PHASE3_TABLES),
    log:
        LOG("eval_summary"),
    benchmark:
        BENCH("eval_summary")
    conda:
        "../../envs/teachable.yaml"
    params:
        confidence=config["phase3"]["confidence"],
    shell:
        "teachable eval-summary --rollouts {input} --confidence {params.confidence} "
        "--out {output.rollouts} --out-tables {output.tables} 2> {log}"


rule compare_runs:
    input:
        R("phase3", "rollouts.parquet"),
    output:
        json=expand(R("phase3", "compare", "{run}_vs_base.json"), run=RUN_IDS),
        md=expand(R("phase3", "compare", "{run}_vs_base.md"), run=RUN_IDS),
    log:
        LOG("compare_runs"),
    benchmark:
        BENCH("compare_runs")
    conda:
        "../../envs/teachable.yaml"
    params:
        alpha=config["phase3"]["alpha"],
        confidence=config["phase3"]["confidence"],
        runs=RUN_IDS,
        out_dir=lambda wc, output: os.path.dirname(output.md[0]),
    shell:
        "teachable compare --rollouts {input} --baseline base --model {params.runs} "
        "--alpha {params.alpha} --confidence {params.confidence} "
        "--out-dir {params.out_dir} 2> {log}"
