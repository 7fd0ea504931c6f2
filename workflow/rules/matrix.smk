# Phase 2: the plan (held-out split by task, budget, which runs are trained), the LoRA matrix
# and the B3_traces baseline (one job per trained run) and its summary.


checkpoint plan_training:
    input:
        labeled=R(LABELED.path),
        rollouts=R(ROLLOUT_STEPS.path),
    output:
        heldout=R("phase2", "heldout.json"),
        plan=R("phase2", "plan.json"),
    log:
        LOG("plan_training"),
    conda:
        "../../envs/teachable.yaml"
    params:
        cfg=lambda wc: cfg_json(
            seed=config["seed"],
            phase2={
                k: config["phase2"][k]
                for k in ("heldout_frac", "budget", "min_budget", "lora", "traces")
            },
            phase5={"budget": config["phase5"]["budget"]},
        ),
    shell:
        "teachable plan-training --config-json {params.cfg:q} --labeled {input.labeled} "
        "--rollouts {input.rollouts} "
        "--out-heldout {output.heldout} --out-plan {output.plan} 2> {log}"


rule train_run:
    input:
        **get_gate_input(),
        model=get_student_model,
        labeled=R(LABELED.path),
        rollouts=R(ROLLOUT_STEPS.path),
        heldout=R("phase2", "heldout.json"),
        plan=R("phase2", "plan.json"),
    output:
        adapter=directory(R("phase2", "{run}", "adapter")),
        log_json=R("phase2", "{run}", "train_log.json"),
        train_set=R("phase2", "{run}", "train_set.json"),
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
        cfg=lambda wc: cfg_json(
            seed=config["seed"],
            env=env_cfg(),
            student=student_runtime(),
            phase2={k: config["phase2"][k] for k in ("lora", "traces")},
        ),
        out_dir=lambda wc, output: os.path.dirname(output.log_json),
    shell:
        "OMP_NUM_THREADS={threads} teachable train-run --config-json {params.cfg:q} "
        "--model {input.model} --labeled {input.labeled} --heldout {input.heldout} "
        "--plan {input.plan} --run-id {wildcards.run} --rollouts {input.rollouts} "
        "--out-dir {params.out_dir} 2> {log}"


rule training_summary:
    input:
        plan=R("phase2", "plan.json"),
        logs=lambda wc: expand(
            R("phase2", "{run}", "train_log.json"), run=get_trained_runs()
        ),
    output:
        R("phase2", "training_summary.json"),
    log:
        LOG("training_summary"),
    conda:
        "../../envs/teachable.yaml"
    shell:
        "teachable training-summary --plan {input.plan} --train-logs {input.logs} "
        "--out {output} 2> {log}"
