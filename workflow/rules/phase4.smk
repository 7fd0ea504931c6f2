# Phase 4: the teachability predictor from cheap observables, cross-validated by task.


rule predictor:
    input:
        R("phase1", "labeled_snapshots.parquet"),
    output:
        predictor=directory(R("phase4", "predictor")),
        result=R("phase4", "training_result.json"),
        oof=R("phase4", "oof_predictions.parquet"),
    log:
        LOG("predictor"),
    benchmark:
        BENCH("predictor")
    conda:
        "../../envs/teachable.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        cfg=lambda wc: cfg_json(seed=config["seed"], phase4=config["phase4"]),
    shell:
        "OMP_NUM_THREADS={threads} teachable predictor --config-json {params.cfg:q} "
        "--labeled {input} --out-dir {output.predictor} --out-result {output.result} "
        "--out-oof {output.oof} 2> {log}"
