"""Figures, tables and the computed study summary (``teachable figures | tables | summary``), in
modules along those sections: ``inputs`` (reading the phase outputs, number helpers),
``tables``, ``checks``, ``summary`` and ``figures``.

Every number in them is read from a phase output (or computed from such numbers, as said below);
nothing is typed in. An input without rows, or without the columns / keys a figure or table
needs, is a ValueError naming the file, never an empty plot.

Inputs (tables declared in ``teachable.schemas``, read and checked with ``io.read_table``):
- phase1/labeled_snapshots.parquet, phase1/quadrant_thresholds.json, phase1/hint_audit.json,
  phase1/teacher_failures.parquet; phase0/mining_summary.json
- phase1b/micro_training_results.parquet, phase1b/cpt_correlation.json
- phase2/training_summary.json
- phase3/{overall_task_results,transfer_matrix,retention_results,stuckness_results}.csv,
  phase3/rollouts.parquet (every model's eval rollouts: the transfer check's bootstrap)
- phase4/training_result.json, phase5/selection_summary.json

Derived numbers (the only ones not copied from a file):
- quadrant_summary: mean U / L_local / ELP_net per quadrant; ELP_net with a Student-t interval
  (``stats.mean_interval``) over snapshots.
- Pareto frontier: the runs no other run beats on both axes (retention drop lower-or-equal AND
  gain higher-or-equal, one of them strictly).
Gains vs base (main_results, the frontier) are read from overall_task_results.csv
(``gain_vs_base``, ``gain_lo``, ``gain_hi``: Phase 3's paired bootstrap over tasks).

Checks of ``summary.json`` (each ``{"id", "claim", "held", "values", "detail"}``). A verdict
rests on an interval or on a (Holm-adjusted where there is a family) p-value, never on two point
estimates, and ``detail`` always shows the interval. ``held`` is True (held: the interval
supports the claim), False (not held: only when the interval excludes the claim in its
direction, ``stats.interval_verdict``) or null (undetermined: the interval straddles the
threshold, or an input is missing or NaN; ``detail`` says which):
- ``cpt_rho``: Spearman rho(ELP_net, micro-training delta) against rho_threshold, from
  cpt_correlation.json and its CI: held iff the CI's lower bound >= the threshold; not held
  iff its upper bound < the threshold; else undetermined (the interval straddles it).
- ``transfer_diagonal``: over the trained quadrant runs' transfer cells, mean delta_success
  where trained_on == evaluated_on minus the mean where they differ, with its interval over a
  bootstrap of the held-out tasks (every cell recomputed from Phase 3's rollouts on each
  resample, ``evaluation_tables.transfer_locality``): held iff the lower bound > 0, not held iff
  the upper bound <= 0, else undetermined.
- ``retention_drop``: "no Phase 2 run drops retention by the threshold or more", from the
  runs' simultaneous intervals of the drop (``drop_sim_lo/_hi``: Bonferroni over the models of
  Phase 3, paired cluster bootstrap over tasks): not held iff some run's lower bound >= the
  threshold; held iff every run's upper bound < the threshold; else undetermined. A missing run
  or NaN drop (e.g. fewer than 2 rollouts per task) makes it undetermined unless another run
  already shows it is not held.
- ``predictor_beats_entropy``: Phase 4's cluster-bootstrap intervals of predictor - entropy in
  Precision@K and NDCG@K: held iff both lower bounds > 0, not held iff either upper bound <= 0,
  else undetermined (``predictor_metrics.beats_by_interval``).
- ``selection_predictor``: PREDICTOR vs the best baseline (highest point gain of RANDOM,
  ENTROPY, LEARNABILITY) from selection_summary.json's ``comparisons``: held iff the
  Holm-adjusted p (over PREDICTOR vs each baseline) < alpha and the difference in success > 0;
  not held iff the difference's paired bootstrap interval over tasks is <= 0 (excludes a gain);
  else undetermined.
- ``selection_oracle_vs_learnability``: ORACLE (CPT's full labels) vs LEARNABILITY (one rollout
  condition): held iff p < alpha and the difference > 0; not held iff the difference's interval
  is <= 0; else undetermined.

The positive control (``summary.json``'s ``control``, ``checks.check_positive_control``, shown
first in summary.md): held iff B1_uniform or B2_all gains on the snapshot suite (all held-out
snapshots pooled, ``evaluation_tables.snapshot_gain``: its interval's lower bound > 0) with its
retention not "not held" (its own drop interval not at or above the threshold); else failed, and
then the checks that read trained models (``checks.GATED_CHECKS``: transfer, retention and the
two selection comparisons; the CPT and predictor checks read no trained model) are not
interpretable: ``held`` null, ``not_interpretable`` the reason, the verdict they would have had
in ``values["verdict_if_read"]``, marked ⊘.
"""

from .checks import (
    check_beyond_headroom,
    check_cpt,
    check_oracle_vs_learnability,
    check_predictor,
    check_retention,
    check_selection_predictor,
    check_transfer_diagonal,
)
from .figures import figures_from_files
from .inputs import FIGURES, TABLE_FILES, TABLES, pareto_mask, read_failures
from .summary import build_summary, summary_from_files
from .tables import TABLE_COLUMNS, build_tables, tables_from_files, to_markdown

__all__ = [
    "FIGURES", "TABLES", "TABLE_COLUMNS", "TABLE_FILES", "build_summary", "build_tables", "check_beyond_headroom",
    "check_cpt", "check_oracle_vs_learnability", "check_predictor", "check_retention", "check_selection_predictor",
    "check_transfer_diagonal", "figures_from_files", "pareto_mask", "read_failures", "summary_from_files",
    "tables_from_files", "to_markdown",
]  # fmt: skip
