# Phase 4: the teachability predictor from cheap observables, cross-validated by task; then its
# metrics (a separate rule: changing a statistic does not refit, nor retrain Phase 5's PREDICTOR).


rule predictor:
    input:
        R(LABELED.path),
    output:
        predictor=directory(R("phase4", "predictor")),
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
        cfg=lambda wc: cfg_json(
            seed=config["seed"],
            phase4={k: config["phase4"][k] for k in PREDICTOR_FIT_KEYS},
        ),
    shell:
        "OMP_NUM_THREADS={threads} teachable predictor --config-json {params.cfg:q} "
        "--labeled {input} --out-dir {output.predictor} --out-oof {output.oof} 2> {log}"


rule predictor_metrics:
    input:
        oof=R("phase4", "oof_predictions.parquet"),
        predictor=R("phase4", "predictor"),
    output:
        R("phase4", "training_result.json"),
    log:
        LOG("predictor_metrics"),
    benchmark:
        BENCH("predictor_metrics")
    conda:
        "../../envs/teachable.yaml"
    params:
        cfg=lambda wc: cfg_json(
            seed=config["seed"],
            phase4={
                k: v
                for k, v in config["phase4"].items()
                if k not in PREDICTOR_FIT_KEYS
            },
        ),
    shell:
        "teachable predictor-metrics --config-json {params.cfg:q} --oof {input.oof} "
        "--predictor {input.predictor} --out {output} 2> {log}"
