# Figures, tables and the summary of the study's checks; `snakemake --report` collects them.


rule figures:
    input:
        labeled=R(LABELED.path),
        thresholds=R("phase1", "quadrant_thresholds.json"),
        micro=R(MICRO_RESULTS.path),
        correlation=R("phase1b", "cpt_correlation.json"),
        transfer=R(PHASE3_TABLES["transfer"].path),
        overall=R(PHASE3_TABLES["overall"].path),
        retention=R(PHASE3_TABLES["retention"].path),
        selection=R("phase5", "selection_summary.json"),
    output:
        **{
            name: report(
                R("figures", f"{name}.png"),
                caption=f"../report/{name}.rst",
                category=category,
            )
            for name, category in FIGURE_CATEGORIES.items()
        },
    log:
        LOG("figures"),
    benchmark:
        BENCH("figures")
    conda:
        "../../envs/teachable.yaml"
    params:
        confidence=config["phase3"]["confidence"],
        threshold=config["report"]["retention_threshold"],
        out_dir=lambda wc, output: os.path.dirname(output[0]),
    shell:
        "MPLBACKEND=Agg teachable figures --labeled {input.labeled} "
        "--thresholds {input.thresholds} --micro {input.micro} "
        "--correlation {input.correlation} --transfer {input.transfer} "
        "--overall {input.overall} --retention {input.retention} "
        "--selection {input.selection} --confidence {params.confidence} "
        "--retention-threshold {params.threshold} --out-dir {params.out_dir} 2> {log}"


rule tables:
    input:
        labeled=R(LABELED.path),
        transfer=R(PHASE3_TABLES["transfer"].path),
        overall=R(PHASE3_TABLES["overall"].path),
        retention=R(PHASE3_TABLES["retention"].path),
        stuckness=R(PHASE3_TABLES["stuckness"].path),
        family=R(PHASE3_TABLES["family"].path),
        predictor=R("phase4", "training_result.json"),
        selection=R("phase5", "selection_summary.json"),
    output:
        csv=[
            report(
                R("tables", f"{t}.csv"),
                caption="../report/table.rst",
                category="Tables",
                labels={"table": t},
            )
            for t in TABLES
        ],
        md=[R("tables", f"{t}.md") for t in TABLES],
    log:
        LOG("tables"),
    benchmark:
        BENCH("tables")
    conda:
        "../../envs/teachable.yaml"
    params:
        confidence=config["phase3"]["confidence"],
        out_dir=lambda wc, output: os.path.dirname(output.csv[0]),
    shell:
        "teachable tables --labeled {input.labeled} --transfer {input.transfer} "
        "--overall {input.overall} --retention {input.retention} "
        "--stuckness {input.stuckness} --family {input.family} --predictor {input.predictor} "
        "--selection {input.selection} --confidence {params.confidence} "
        "--out-dir {params.out_dir} 2> {log}"


rule summary:
    input:
        labeled=R(LABELED.path),
        hint_audit=R("phase1", "hint_audit.json"),
        training=R("phase2", "training_summary.json"),
        mining=R("phase0", "mining_summary.json"),
        base_rollouts=R(EVAL_ROLLOUTS.path.format(model=BASE_MODEL_ID)),
        teacher_failures=R(TEACHER_FAILURES.path),
        correlation=R("phase1b", "cpt_correlation.json"),
        transfer=R(PHASE3_TABLES["transfer"].path),
        retention=R(PHASE3_TABLES["retention"].path),
        overall=R(PHASE3_TABLES["overall"].path),
        thresholds=R("phase1", "quadrant_thresholds.json"),
        predictor=R("phase4", "training_result.json"),
        selection=R("phase5", "selection_summary.json"),
    output:
        json=R("summary.json"),
        md=report(R("summary.md"), caption="../report/summary.rst", category="Summary"),
    log:
        LOG("summary"),
    benchmark:
        BENCH("summary")
    conda:
        "../../envs/teachable.yaml"
    params:
        threshold=config["report"]["retention_threshold"],
        alpha=config["phase3"]["alpha"],
        confidence=config["phase3"]["confidence"],
        n_bootstrap=config["phase3"]["n_bootstrap"],
        seed=config["seed"],
    shell:
        "teachable summary --correlation {input.correlation} --transfer {input.transfer} "
        "--retention {input.retention} --overall {input.overall} "
        "--thresholds {input.thresholds} --predictor {input.predictor} "
        "--selection {input.selection} --labeled {input.labeled} "
        "--hint-audit {input.hint_audit} --training {input.training} "
        "--mining {input.mining} --base-rollouts {input.base_rollouts} "
        "--teacher-failures {input.teacher_failures} "
        "--retention-threshold {params.threshold} --alpha {params.alpha} "
        "--confidence {params.confidence} --n-bootstrap {params.n_bootstrap} "
        "--seed {params.seed} --out-json {output.json} --out-md {output.md} 2> {log}"
