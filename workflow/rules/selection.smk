# Phase 5: the selection experiment (one trained and evaluated model per method) and its summary.


rule select_train:
    input:
        unpack(get_selection_inputs),
    output:
        adapter=directory(R("phase5", "selection", "{method}", "adapter")),
        selected=R("phase5", "selection", "{method}", "selected.json"),
        log_json=R("phase5", "selection", "{method}", "train_log.json"),
    log:
        LOG("select_train", "{method}"),
    benchmark:
        BENCH("select_train", "{method}")
    conda:
        "../../envs/teachable.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    params:
        cfg=lambda wc: cfg_json(
            seed=config["seed"],
            env=env_cfg(),
            student=student_runtime(),
            phase2={"lora": config["phase2"]["lora"]},
            phase5=config["phase5"],
        ),
        predictor=lambda wc, input: (
            f"--predictor {input.predictor}" if "predictor" in input.keys() else ""
        ),
        out_dir=lambda wc, output: os.path.dirname(output.selected),
    shell:
        "OMP_NUM_THREADS={threads} teachable select-train --config-json {params.cfg:q} "
        "--method {wildcards.method} --model {input.model} --labeled {input.labeled} "
        "--heldout {input.heldout} --plan {input.plan} {params.predictor} "
        "--out-dir {params.out_dir} 2> {log}"


rule eval_selection:
    input:
        model=get_student_model,
        labeled=R(LABELED.path),
        heldout=R("phase2", "heldout.json"),
        adapter=R("phase5", "selection", "{method}", "adapter"),
    output:
        R("phase5", "selection", "{method}", "rollouts.parquet"),
    log:
        LOG("eval_selection", "{method}"),
    benchmark:
        BENCH("eval_selection", "{method}")
    conda:
        "../../envs/teachable.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    params:
        cfg=lambda wc: eval_cfg_json(),
        model_id=lambda wc: f"select_{wc.method}",
    shell:
        "OMP_NUM_THREADS={threads} teachable eval-model --config-json {params.cfg:q} "
        "--model {input.model} --adapter {input.adapter} --model-id {params.model_id} "
        "--labeled {input.labeled} --heldout {input.heldout} --out {output} 2> {log}"


rule benchmark_selection:
    input:
        R("phase5", "selection", "{method}", "rollouts.parquet"),
    output:
        R("phase5", "selection", "{method}", "benchmark.json"),
    log:
        LOG("benchmark_selection", "{method}"),
    conda:
        "../../envs/teachable.yaml"
    params:
        confidence=config["phase3"]["confidence"],
        n_bootstrap=config["phase3"]["n_bootstrap"],
        seed=config["seed"],
        model_id=lambda wc: f"select_{wc.method}",
    shell:
        "teachable benchmark --rollouts {input} --model-id {params.model_id} "
        "--confidence {params.confidence} --n-bootstrap {params.n_bootstrap} "
        "--seed {params.seed} --out {output} 2> {log}"


rule selection_summary:
    input:
        base=R(EVAL_ROLLOUTS.path.format(model=BASE_MODEL_ID)),
        plan=R("phase2", "plan.json"),
        rollouts=lambda wc: expand(
            R("phase5", "selection", "{method}", "rollouts.parquet"),
            method=get_selection_methods(),
        ),
        selected=lambda wc: expand(
            R("phase5", "selection", "{method}", "selected.json"),
            method=get_selection_methods(),
        ),
    output:
        R("phase5", "selection_summary.json"),
    log:
        LOG("selection_summary"),
    benchmark:
        BENCH("selection_summary")
    conda:
        "../../envs/teachable.yaml"
    params:
        confidence=config["phase3"]["confidence"],
        n_bootstrap=config["phase3"]["n_bootstrap"],
        seed=config["seed"],
    shell:
        "teachable selection-summary --base-rollouts {input.base} --plan {input.plan} "
        "--rollouts {input.rollouts} --selected {input.selected} "
        "--confidence {params.confidence} --n-bootstrap {params.n_bootstrap} "
        "--seed {params.seed} --out {output} 2> {log}"
