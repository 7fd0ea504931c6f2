# Student init: build and train the embedded default student offline (skipped when
# student.model_path names a local HF model directory).


rule student_init:
    output:
        directory(R("student", "model")),
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
        cfg=lambda wc: cfg_json(**get_student_init_cfg()),
    shell:
        "OMP_NUM_THREADS={threads} teachable student-init --config-json {params.cfg:q} "
        "--out {output} 2> {log}"


rule student_eval:
    input:
        model=get_student_model,
    output:
        R("student", "eval_summary.json"),
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
        n=config["student"]["eval_tasks"],
        cfg=lambda wc: cfg_json(
            seed=config["seed"],
            env=env_cfg(),
            splits={"eval": config["splits"]["eval"]},
            student=student_runtime(),
        ),
    shell:
        "OMP_NUM_THREADS={threads} teachable eval-student --config-json {params.cfg:q} "
        "--model {input.model} --split eval --n-tasks {params.n} --out {output} 2> {log}"
