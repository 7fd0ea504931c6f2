# Phase 1: labels (U, leverage, CPT) in shards, then merge + quadrants + threshold plots.


rule label_shard:
    input:
        model=get_student_model,
        snapshots=get_snapshot_files(),
    output:
        labels=R(RAW_LABELS.path),
        failures=R("phase1", "shards", "teacher_failures_{shard}.parquet"),
    log:
        LOG("label_shard", "{shard}"),
    benchmark:
        BENCH("label_shard", "{shard}")
    conda:
        "../../envs/teachable.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        n_shards=config["phase1"]["n_shards"],
        cfg=lambda wc: cfg_json(
            seed=config["seed"],
            env=env_cfg(),
            student=student_runtime(),
            teacher=config["teacher"],
            phase1={
                k: config["phase1"][k]
                for k in (
                    "experiments",
                    "max_snapshots",
                    "n_rollouts",
                    "n_rollouts_expert",
                )
            },
        ),
    shell:
        "OMP_NUM_THREADS={threads} teachable label-shard --config-json {params.cfg:q} "
        "--model {input.model} --snapshots {input.snapshots} --shard {wildcards.shard} "
        "--n-shards {params.n_shards} --out {output.labels} "
        "--out-failures {output.failures} 2> {log}"


rule merge_labels:
    input:
        shards=get_label_shards("labels"),
        failures=get_label_shards("teacher_failures"),
    output:
        parquet=R(LABELED.path),
        jsonl=R("phase1", "labeled_snapshots.jsonl"),
        thresholds=R("phase1", "quadrant_thresholds.json"),
        failures=R(TEACHER_FAILURES.path),
        plots=expand(R("phase1", "threshold_plots", "{plot}.png"), plot=PHASE1_PLOTS),
    log:
        LOG("merge_labels"),
    benchmark:
        BENCH("merge_labels")
    conda:
        "../../envs/teachable.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        cfg=lambda wc: cfg_json(phase1={"quadrants": config["phase1"]["quadrants"]}),
        plots_dir=lambda wc, output: os.path.dirname(output.plots[0]),
    shell:
        "teachable merge-labels --config-json {params.cfg:q} --shards {input.shards} "
        "--failures {input.failures} --out {output.parquet} --out-jsonl {output.jsonl} "
        "--out-failures {output.failures} --thresholds {output.thresholds} "
        "--plots-dir {params.plots_dir} 2> {log}"


rule label_report:
    input:
        R(LABELED.path),
    output:
        intervals=R(LABEL_INTERVALS.path),
        hint_audit=R("phase1", "hint_audit.json"),
    log:
        LOG("label_report"),
    benchmark:
        BENCH("label_report")
    conda:
        "../../envs/teachable.yaml"
    params:
        cfg=lambda wc: cfg_json(
            seed=config["seed"],
            phase1={k: config["phase1"][k] for k in ("confidence", "n_bootstrap")},
        ),
    shell:
        "teachable label-report --config-json {params.cfg:q} --labeled {input} "
        "--out-intervals {output.intervals} --out-hint-audit {output.hint_audit} 2> {log}"
