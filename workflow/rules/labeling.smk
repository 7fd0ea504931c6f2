# Phase 1: labels (U, leverage, CPT) in shards, then merge + quadrants + threshold plots.


rule label_shard:
    input:
        **step_input(
            "label-shard", model=get_student_model, snapshots=get_snapshot_files()
        ),
    output:
        **step_output("label-shard"),
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
        **step_params("label-shard", n_shards=config["phase1"]["n_shards"]),
    shell:
        step_shell(
            "label-shard",
            "--shard {wildcards.shard} --n-shards {params.n_shards}",
            env="OMP_NUM_THREADS={threads}",
        )


rule merge_labels:
    input:
        **step_input(
            "merge-labels",
            shards=get_label_shards("shards"),
            failures=get_label_shards("failures"),
        ),
    output:
        **step_output("merge-labels", plots=get_threshold_plots()),
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
        **step_params("merge-labels"),
    shell:
        step_shell("merge-labels")


rule label_report:
    input:
        **step_input("label-report"),
    output:
        **step_output("label-report"),
    log:
        LOG("label_report"),
    benchmark:
        BENCH("label_report")
    conda:
        "../../envs/teachable.yaml"
    params:
        **step_params("label-report"),
    shell:
        step_shell("label-report")
