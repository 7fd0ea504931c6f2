# teachable: find, validate and use the teachable moments of an LLM agent.
# The protocol is in docs/protocol.md; each phase is one rule file below.
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
include: "workflow/rules/mining.smk"
include: "workflow/rules/labeling.smk"
include: "workflow/rules/microtrain.smk"
include: "workflow/rules/matrix.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/predictor.smk"
include: "workflow/rules/selection.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        get_static_outputs(),
        get_planned_outputs,
