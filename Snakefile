# teachable: find, validate and use the teachable moments of an LLM agent.
# The protocol is in README.md ("Protocol"); each phase is one rule file below.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: f"{workflow.basedir}/config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    shard=r"\d+",
    run="|".join(RUN_IDS),
    model="|".join(EVAL_MODELS),
    method="|".join(METHODS),


include: "workflow/rules/student.smk"
include: "workflow/rules/phase0.smk"
include: "workflow/rules/phase1.smk"
include: "workflow/rules/phase1b.smk"
include: "workflow/rules/phase2.smk"
include: "workflow/rules/phase3.smk"
include: "workflow/rules/phase4.smk"
include: "workflow/rules/phase5.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        get_static_outputs(),
        get_planned_outputs,
