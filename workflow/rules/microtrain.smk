# Phase 1B: CPT validation by micro-training, and the gate that may stop later phases.


rule microtrain:
    input:
        model=get_student_model,
        labeled=R(LABELED.path),
    output:
        R(MICRO_SHARD.path),
    log:
        LOG("microtrain", "{shard}"),
    benchmark:
        BENCH("microtrain", "{shard}")
    conda:
        "../../envs/teachable.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    params:
        cfg=lambda wc: micro_cfg_json(),
        n_shards=config["phase1b"]["n_shards"],
    shell:
        "OMP_NUM_THREADS={threads} teachable microtrain --config-json {params.cfg:q} "
        "--model {input.model} --labeled {input.labeled} --shard {wildcards.shard} "
        "--n-shards {params.n_shards} --out {output} 2> {log}"


rule micro_merge:
    input:
        get_micro_shards(),
    output:
        results=R(MICRO_RESULTS.path),
        correlation=R("phase1b", "cpt_correlation.json"),
    log:
        LOG("micro_merge"),
    benchmark:
        BENCH("micro_merge")
    conda:
        "../../envs/teachable.yaml"
    params:
        cfg=lambda wc: micro_merge_cfg_json(),
    shell:
        "teachable micro-merge --config-json {params.cfg:q} --shards {input} "
        "--out {output.results} --out-correlation {output.correlation} 2> {log}"


rule cpt_gate:
    input:
        R("phase1b", "cpt_correlation.json"),
    output:
        R("phase1b", "gate.json"),
    log:
        LOG("cpt_gate"),
    conda:
        "../../envs/teachable.yaml"
    params:
        gate=config["phase1b"]["gate"],
    shell:
        "teachable cpt-gate --correlation {input} --gate {params.gate} --out {output} 2> {log}"
