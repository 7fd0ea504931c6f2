# Student init: build and train the embedded default student offline (skipped when
# student.model_path names a local HF model directory).


rule student_init:
    output:
        **step_output("student-init"),
    log:
        LOG("student_init"),
    benchmark:
        BENCH("student_init")
    conda:
        "../../envs/teachable.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        **step_params("student-init"),
    shell:
        step_shell("student-init", env="OMP_NUM_THREADS={threads}")


rule student_eval:
    input:
        **step_input("eval-student", model=get_student_model),
    output:
        **step_output("eval-student"),
    log:
        LOG("student_eval"),
    benchmark:
        BENCH("student_eval")
    conda:
        "../../envs/teachable.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        **step_params("eval-student", n=config["student"]["eval_tasks"]),
    shell:
        step_shell(
            "eval-student",
            "--split eval --n-tasks {params.n}",
            env="OMP_NUM_THREADS={threads}",
        )
