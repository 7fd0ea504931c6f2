"""Names shared by phases and by the workflow (kept import-light: the Snakefile reads them)."""

QUADRANTS = ("Q1_highU_highL", "Q2_highU_lowL", "Q3_lowU_lowL", "Q4_lowU_highL")
FORMATS = ("demo", "hint", "contrast")
PLACEBOS = tuple(f"placebo_{m}" for m in FORMATS)  # one placebo per format (teachable.patches)
TRACES_RUN = "B3_traces"  # LoRA SFT on the student's own filtered phase 0 traces
BASELINE_RUNS = ("B1_uniform", "B2_all", TRACES_RUN)
RUN_IDS = tuple(f"{q}_{f}" for q in QUADRANTS for f in FORMATS) + BASELINE_RUNS
BASE_MODEL_ID = "base"
SELECTION_METHODS = ("RANDOM", "ENTROPY", "LEARNABILITY", "LEARNABILITY_EQ", "PREDICTOR", "ORACLE")
# what a selection method's signal cost, counted (teachable.selection_costs)
SELECTION_COST_KEYS = ("student_rollouts", "expert_rollouts", "teacher_calls", "forward_passes")
# figures (name -> report category) and tables of the report (files under figures/ and tables/)
FIGURE_CATEGORIES = {
    "landscape": "1. Labels",
    "cpt_vs_microtraining": "2. CPT validation",
    "in_quadrant_heatmap": "3. Training matrix",
    "transfer_matrix": "3. Training matrix",
    "reliability_retention_frontier": "3. Training matrix",
    "selection_frontier": "5. Selection",
}
TABLES = ("quadrant_summary", "best_supervision", "main_results", "family_metrics", "predictor_metrics",
          "selection_summary")
