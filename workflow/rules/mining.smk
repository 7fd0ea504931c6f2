# Phase 0: Experiment A (student rollouts) and B (expert trajectories); snapshot mining.


rule rollouts:
    input:
        model=get_student_model,
    output:
        R(ROLLOUT_STEPS.path),
    log:
        LOG("rollouts"),
    benchmark:
        BENCH("rollouts")
    conda:
        "../../envs/teachable.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        cfg=lambda wc: cfg_json(
            seed=config["seed"],
            env=env_cfg(),
            splits={"train": config["splits"]["train"]},
            student=student_runtime(),
            phase0={
                k: config["phase0"][k]
                for k in ("a_tasks", "a_episodes_per_task", "b_tasks")
            },
        ),
    shell:
        "OMP_NUM_THREADS={threads} teachable rollouts --config-json {params.cfg:q} "
        "--model {input.model} --out {output} 2> {log}"


rule mine_snapshots:
    input:
        R(ROLLOUT_STEPS.path),
    output:
        failure=R(SNAPSHOTS.path.format(kind="failure")),
        expert=R(SNAPSHOTS.path.format(kind="expert")),
        summary=R("phase0", "mining_summary.json"),
    log:
        LOG("mine_snapshots"),
    benchmark:
        BENCH("mine_snapshots")
    conda:
        "../../envs/teachable.yaml"
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        cfg=lambda wc: cfg_json(
            seed=config["seed"],
            env=env_cfg(),
            phase0={
                k: config["phase0"][k] for k in ("mining", "b_rate", "b_per_episode")
            },
        ),
    shell:
        "teachable mine --config-json {params.cfg:q} --rollouts {input} "
        "--out-failure {output.failure} --out-expert {output.expert} "
        "--out-summary {output.summary} 2> {log}"
