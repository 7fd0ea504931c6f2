# Phase 0: Experiment A (student rollouts) and B (expert trajectories); snapshot mining.


rule rollouts:
    input:
        **step_input("rollouts", model=get_student_model),
    output:
        **step_output("rollouts"),
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
        **step_params("rollouts"),
    shell:
        step_shell("rollouts", env="OMP_NUM_THREADS={threads}")


rule mine_snapshots:
    input:
        **step_input("mine"),
    output:
        **step_output("mine"),
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
        **step_params("mine"),
    shell:
        step_shell("mine")
