# Figures, tables and the summary of the study's checks; `snakemake --report` collects them.
# Their inputs are the report's inputs declared in teachable.steps (REPORT).


rule figures:
    input:
        **step_input("figures"),
    output:
        **step_output(
            "figures",
            figures=[
                report(
                    R(FIGURE.path.format(name=name)),
                    caption=f"../report/{name}.rst",
                    category=category,
                )
                for name, category in FIGURE_CATEGORIES.items()
            ],
        ),
    log:
        LOG("figures"),
    benchmark:
        BENCH("figures")
    conda:
        "../../envs/teachable.yaml"
    params:
        **step_params("figures"),
    shell:
        step_shell("figures", env="MPLBACKEND=Agg")


rule tables:
    input:
        **step_input("tables"),
    output:
        **step_output(
            "tables",
            csv=[
                report(
                    R(TABLE_CSV.path.format(table=t)),
                    caption="../report/table.rst",
                    category="Tables",
                    labels={"table": t},
                )
                for t in TABLES
            ],
            md=expand(R(TABLE_MD.path), table=TABLES),
        ),
    log:
        LOG("tables"),
    benchmark:
        BENCH("tables")
    conda:
        "../../envs/teachable.yaml"
    params:
        **step_params("tables"),
    shell:
        step_shell("tables")


rule summary:
    input:
        **step_input("summary"),
    output:
        **step_output(
            "summary",
            md=report(
                R(SUMMARY_MD.path), caption="../report/summary.rst", category="Summary"
            ),
        ),
    log:
        LOG("summary"),
    benchmark:
        BENCH("summary")
    conda:
        "../../envs/teachable.yaml"
    params:
        **step_params("summary"),
    shell:
        step_shell("summary")
