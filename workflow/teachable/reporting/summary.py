"""summary.json / summary.md: the checks, the key numbers and the protocol checks."""

from __future__ import annotations

import logging
from typing import Sequence

import pandas as pd

from ..constants import (
    BASE_MODEL_ID,
    FORMATS,
    RUN_IDS,
)
from ..documents import (
    CPT_CORRELATION,
    HINT_AUDIT,
    LABEL_RELIABILITY,
    MINING_SUMMARY,
    SUMMARY,
    THRESHOLDS,
    TRAINING_SUMMARY,
)
from ..anchor import marginal_text
from ..evaluation_tables import snapshot_gain, transfer_locality
from ..io import atomic_path, write_doc
from ..schemas import ALL_EVAL_ROLLOUTS, LABELED, PHASE3_TABLES
from .checks import (
    CONTROL_RUNS,
    check_beyond_headroom,
    check_cpt,
    check_oracle_vs_learnability,
    check_positive_control,
    check_predictor,
    check_retention,
    check_selection_predictor,
    check_transfer_diagonal,
    gate_checks,
)
from .inputs import (
    QUADRANT_RUNS,
    cost_text,
    fmt,
    fmt_ci,
    model_order,
    num,
    read_failures,
    read_input,
    read_predictor,
    read_report,
    read_selection,
    short,
)

log = logging.getLogger(__name__)

def gain_numbers(labeled: pd.DataFrame, confidence: float, n_bootstrap: int, seed: int) -> dict:
    """Mean gain_net per format and mean ELP_net (cross-fitted and naive) over labeled snapshots,
    each with a cluster bootstrap interval over tasks."""
    from ..stats import ClusterBootstrap

    cb = ClusterBootstrap(confidence, n_bootstrap, seed)
    cols = [*(f"gain_net_{m}" for m in FORMATS), "ELP_net", "ELP_net_naive", "p_policy", "L_local"]
    return {c: cb.rate(labeled[c], labeled["task_id"]) for c in cols if c in labeled.columns}


def protocol_numbers(*, labeled: pd.DataFrame, hint_audit: dict, corr: dict, training: dict, mining: dict,
                     eval_rollouts: pd.DataFrame, selection: dict, teacher_failures: pd.DataFrame,
                     confidence: float = 0.95, n_bootstrap: int = 2000, seed: int = 0) -> dict:  # fmt: skip
    """The numbers that say whether the study's comparisons are sound: the hint audit, gains per
    format, the gate's baselines, the training plan (skipped runs, compute) and expert errors
    (Phase 3's from the base's rollouts)."""
    base = eval_rollouts[eval_rollouts["model_id"] == BASE_MODEL_ID]
    eval_errors = base.drop_duplicates(["suite", "task_id", "snapshot_id"])["expert_error"]
    return {
        "hint_audit": {k: hint_audit.get(k) for k in ("n", "n_tasks", "diagnoses_naming_action",
                                                      "state_action_accuracy", "state_hint_action_accuracy",
                                                      "hint_action_accuracy", "demo_action_accuracy",
                                                      "majority_accuracy", "leakage_index", "method", "reason")},
        "gains": gain_numbers(labeled, confidence, n_bootstrap, seed),
        "gate": {"rho": num(corr.get("rho")), "rho_ci": corr.get("rho_ci"), "p_value": num(corr.get("p_value")),
                 "n": corr.get("n"), "baselines": corr.get("baselines"), "partial_rho": corr.get("partial_rho"),
                 "per_route": corr.get("per_route")},
        "training": {**{k: training.get(k) for k in ("budget", "epochs", "optimizer_steps", "b2_all_compute_ratio",
                                                     "skipped_runs", "equal_budgets", "heldout_leaks", "anchor_share")},
                     "runs": {r: {k: e.get(k) for k in ("anchor_examples", "target_marginal", "drift")}
                              for r, e in (training.get("runs") or {}).items()}},
        "selection_skipped": selection.get("skipped"),
        "teacher_failures": {str(k): int(v) for k, v in teacher_failures["failure_kind"].value_counts().items()}
        if len(teacher_failures) else {},
        "expert_errors": {
            "phase0_A": {k: v for k, v in mining.get("A", {}).items() if k.startswith("expert_error")},
            "phase0_B": {k: v for k, v in mining.get("B", {}).items() if k.startswith("expert_error")},
            "phase1": {"expert_rollouts_failed": int(labeled["p_expert_errors"].sum()),
                       "of_which_impossible": int(labeled["p_expert_impossible"].sum())},
            "phase3_starts": {str(k): int(v) for k, v in eval_errors.dropna().value_counts().items()},
        },
    }  # fmt: skip


def _acc(a: dict | None) -> str:
    return "n/a" if not a else f"{fmt(a.get('p'))} {fmt_ci(a.get('lo'), a.get('hi'))} (n = {a.get('n')})"


def _gain(gains: dict, fmt_: str) -> str:
    g = gains.get(f"gain_net_{fmt_}")
    return "n/a" if not g else f"{fmt(g['value'])} {fmt_ci(g['lo'], g['hi'])}"


def hint_reading(leak: dict | None, gains: dict) -> str:
    """The hint format's gains read in the light of the hint audit's leakage index and its band
    (``hint_audit.leakage_index``): a demo-like diagnosis makes hint's gains a demo's."""
    gain = f"hint's gain_net {_gain(gains, 'hint')} (demo's {_gain(gains, 'demo')})"
    if not leak:
        return f"- Hint leakage index: not computed (see the hint audit); {gain} is read without it"
    if leak.get("lambda") is None:
        return f"- Hint leakage index undefined ({leak.get('reason')}); {gain} is read without it"
    band = leak.get("band")
    readings = {
        "demo-like": f"hint's gains are those of a demo-like patch: the diagnosis gives the action away beyond the "
                     f"state, so {gain} measures telling the action, not hinting",
        "informative hint": f"the diagnosis carries part of the action beyond the state: {gain} mixes a hint with "
                            "telling the action",
        "hint": f"the diagnosis adds little of the action beyond the state: {gain} is a hint's",
        None: f"the interval spans {' / '.join(leak.get('bands_spanned') or [])}"
              + (f" ({leak['reason']})" if leak.get("reason") else "")
              + f"; the point estimate alone reads \"{leak.get('band_point')}\", so whether {gain} is a hint's or "
              "partly a demo's is undetermined",
    }  # fmt: skip
    rules = "; ".join(f"{name}: {rule}" for name, rule in (leak.get("bands") or {}).items())
    return (f"- Hint leakage index lambda = {fmt(leak['lambda'])} {fmt_ci(leak.get('lo'), leak.get('hi'))}, band "
            f"\"{band or 'undetermined'}\" (bands fixed in advance: {rules}): {readings[band]}")  # fmt: skip


def protocol_markdown(p: dict) -> list[str]:
    h, g, t = p["hint_audit"], p["gate"], p["training"]
    lines = ["", "## Protocol checks", ""]
    lines.append(f"- Hint audit ({h.get('n')} diagnoses, {h.get('n_tasks')} tasks): {h.get('diagnoses_naming_action')} "
                 f"name or paraphrase an action; action predicted from the hint {_acc(h.get('hint_action_accuracy'))}, "
                 f"from the demo patch {_acc(h.get('demo_action_accuracy'))}, majority class "
                 f"{_acc(h.get('majority_accuracy'))}, from the state text {_acc(h.get('state_action_accuracy'))}, "
                 f"from the state and the hint {_acc(h.get('state_hint_action_accuracy'))}"
                 + (f" ({h['reason']})" if h.get("reason") else ""))  # fmt: skip
    gains = p["gains"]
    lines.append(hint_reading(h.get("leakage_index"), gains))
    lines.append("- Mean gain_net per format (vs its own placebo; cluster bootstrap over tasks): " + ", ".join(
        f"{m} {fmt(gains[f'gain_net_{m}']['value'])} {fmt_ci(gains[f'gain_net_{m}']['lo'], gains[f'gain_net_{m}']['hi'])}"
        for m in FORMATS if f"gain_net_{m}" in gains))  # fmt: skip
    if "ELP_net" in gains and "ELP_net_naive" in gains:
        e, nv = gains["ELP_net"], gains["ELP_net_naive"]
        lines.append(f"- ELP_net cross-fitted {fmt(e['value'])} {fmt_ci(e['lo'], e['hi'])} vs the naive max "
                     f"{fmt(nv['value'])} {fmt_ci(nv['lo'], nv['hi'])} (n = {e['n']} snapshots, {e['n_clusters']} tasks)")
    base = g.get("baselines") or {}
    ci = g.get("rho_ci") or [None, None]
    lines.append(f"- Gate (Phase 1B, n = {g.get('n')}): rho(ELP_net, delta) {fmt(g.get('rho'))} {fmt_ci(*ci)}; trivial "
                 "predictors: " + ", ".join(f"{k} {fmt(v.get('rho'))} {fmt_ci(*(v.get('rho_ci') or [None, None]))}"
                                           for k, v in base.items())
                 + f"; partial rho given p_policy {fmt((g.get('partial_rho') or {}).get('rho'))} "
                 + fmt_ci(*((g.get("partial_rho") or {}).get("rho_ci") or [None, None])))  # fmt: skip
    routes = g.get("per_route") or {}
    if routes:
        lines.append("- rho per route: " + ", ".join(f"{r} {fmt(v.get('rho'))} (n = {v.get('n')})" for r, v in routes.items()))
    lines.append(f"- Training (Phase 2): K = {t.get('budget')} examples, {t.get('epochs')} epochs, "
                 f"{t.get('optimizer_steps')} optimizer steps per budgeted run; B2_all trains "
                 f"{fmt(t.get('b2_all_compute_ratio'), 1)}x their compute; equal budgets: {t.get('equal_budgets')}")
    lines += training_markdown(t)
    skipped = t.get("skipped_runs") or {}
    lines.append("- Runs not trained: " + ("none" if not skipped else "; ".join(f"{r} ({why})" for r, why in skipped.items())))
    if p.get("selection_skipped"):
        lines.append(f"- Phase 5 not run: {p['selection_skipped']}")
    tf = p.get("teacher_failures") or {}
    lines.append("- Teacher failures (phase 1, after retries; recorded, never replaced): "
                 + (", ".join(f"{k} {v}" for k, v in sorted(tf.items())) if tf else "none"))
    ee = p["expert_errors"]
    lines.append(f"- Expert errors: phase 0 A {ee['phase0_A'] or 'none'}, B {ee['phase0_B'] or 'none'}; phase 1 "
                 f"{ee['phase1']['expert_rollouts_failed']} expert rollouts stopped ({ee['phase1']['of_which_impossible']} "
                 f"mission impossible); phase 3 starts {ee['phase3_starts'] or 'none'}")  # fmt: skip
    return lines


def training_markdown(t: dict) -> list[str]:
    """The anchor's share, and per trained run its target marginal and its drift (KL to the
    base at the fixed unrelated states, ``teachable.anchor``)."""
    runs = t.get("runs") or {}
    if not runs:
        return []
    lines = [f"- Anchor: {fmt(t.get('anchor_share') or 0.0, 2)} of each run's examples are the student's own phase 0 "
             "(state, action) pairs from other states; per run, its targets' marginal and its drift (mean KL(base || "
             "model) at fixed unrelated states, 95% bootstrap over their tasks):"]  # fmt: skip
    for r in model_order(runs):
        e = runs[r]
        lines.append(f"  - {r}: targets {marginal_text(e.get('target_marginal') or {})}; "
                     f"{e.get('anchor_examples') or 0} anchor pairs; {drift_text(e.get('drift'))}")  # fmt: skip
    return lines


def drift_text(d: dict | None) -> str:
    """A model's drift (``anchor.drift_kl``) as the summary shows it."""
    if not d or d.get("kl") is None:
        return "drift not logged"
    return (f"drift {fmt(d['kl'])} {fmt_ci(d.get('lo'), d.get('hi'))} nats (n = {d.get('n_states')} states, "
            f"{d.get('n_tasks')} tasks)")  # fmt: skip


# ------------------------------------------------------------------------------------ reliability
def reliability_numbers(rel: dict, corr: dict) -> dict:
    """The reliability section: the labels' split-half reliabilities (``label_reliability.json``),
    the gate sample's (Δ, ELP_net, L_local) and the attenuation of the gate's ρ
    (``cpt_correlation.json``), the quadrant bands and the gate's verdict."""
    g = corr.get("reliability") or {}
    return {"labels": rel["labels"], "U": rel["U"], "floor": rel["floor"], "n_snapshots": rel["n_snapshots"],
            "n_rollouts": rel["n_rollouts"], "confidence": rel.get("confidence"), "flagged": rel["flagged"],
            "quadrants_reliable": rel["quadrants_reliable"], "bands": rel["bands"], "label_bound": rel["gate_bound"],
            "gate": {"n": corr.get("n"), "rho": num(corr.get("rho")), "rho_ci": corr.get("rho_ci"),
                     "verdict": corr.get("verdict"), "reason": corr.get("reason"), "rule": corr.get("rule"),
                     "sample": corr.get("sample"), "weighting": corr.get("weighting"), "delta": g.get("delta"),
                     "labels": g.get("labels") or {}, "attenuation": g.get("attenuation_ELP_net"),
                     "rho_minus_L_local": corr.get("rho_minus_L_local"),
                     "partial_rho_L_local": corr.get("partial_rho_L_local")}}  # fmt: skip


def _rel(r: dict | None, floor) -> str:
    if not r or num(r.get("reliability")) is None:
        return "not measured" + (f" ({r['reason']})" if r and r.get("reason") else "")
    flag = " ⚠ below the floor" if floor is not None and r["reliability"] < floor else ""
    return f"{fmt(r['reliability'])} {fmt_ci(r.get('lo'), r.get('hi'))}{flag}"


def reliability_markdown(p: dict) -> list[str]:
    floor, g = p["floor"], p["gate"]
    lines = ["", "## Reliability of the labels", "",
             f"Split-half reliability (even / odd rollout indices, Spearman-Brown, percentile bootstrap over "
             f"snapshots); a label under the floor {fmt(floor, 2)} is flagged.", ""]  # fmt: skip
    lines.append(f"- Phase 1 ({p['n_snapshots']} snapshots, {p['n_rollouts']} rollouts per condition): "
                 + "; ".join(f"{k} {_rel(v, floor)}" for k, v in p["labels"].items()))
    lines.append(f"- U: {p['U'].get('reason')}")
    if not p["quadrants_reliable"]:
        lines.append(f"- ⚠ The quadrants rest on an unreliable label: L_local's reliability is "
                     f"{_rel(p['labels'].get('L_local'), floor)} (floor {fmt(floor, 2)}); read the quadrant "
                     "comparisons of phases 2, 3 and 5 as comparisons of noisy groups.")  # fmt: skip
    b = p["bands"]
    lines.append(f"- Quadrant bands ({b.get('interval')}; threshold L_local > {fmt(b.get('L_threshold'))}): "
                 + ", ".join(f"{short(q)} {c['decided']} decided / {c['uncertain']} uncertain"
                             for q, c in b["per_quadrant"].items()))  # fmt: skip
    lines.append(f"- Gate sample ({g.get('sample')}, n = {g.get('n')}; {g.get('weighting')}): delta "
                 f"{_rel(g.get('delta'), floor)}; " + "; ".join(f"{k} {_rel(v, floor)}"
                                                                 for k, v in (g.get("labels") or {}).items()))
    att = g.get("attenuation") or {}
    if num(att.get("max_observable")) is not None:
        lines.append(f"- Attenuation: the largest observable rho(ELP_net, delta) is sqrt(rel(ELP_net) x rel(delta)) = "
                     f"{fmt(att['max_observable'])}; the observed rho {fmt(g.get('rho'))} implies a true rho of about "
                     f"{fmt(att.get('implied_true'))}")  # fmt: skip
    else:
        lb = p.get("label_bound") or {}
        lines.append(f"- Attenuation on the gate sample: {att.get('reason') or 'not measured'}; over all labeled "
                     f"snapshots, with a perfectly reliable delta, rho(ELP_net, delta) could reach at most "
                     f"{fmt(lb.get('max_observable'))}" + (f" ({lb['reason']})" if lb.get("reason") else ""))
    diff, part = g.get("rho_minus_L_local") or {}, g.get("partial_rho_L_local") or {}
    lines.append(f"- Gate: {g.get('reason')}. rho(ELP_net) - rho(L_local) {fmt(num(diff.get('rho')))} "
                 f"{fmt_ci(*(diff.get('rho_ci') or [None, None]))}; partial rho given L_local "
                 f"{fmt(num(part.get('rho')))} {fmt_ci(*(part.get('rho_ci') or [None, None]))}. Rule: {g.get('rule')}")
    return lines


def quadrant_runs(trained: Sequence[str]) -> tuple[str, ...]:
    """The quadrant x format runs among ``trained`` (the transfer check's family)."""
    return tuple(r for r in QUADRANT_RUNS if r in set(trained))


STUDENT_RANGE = (0.05, 0.95)  # a base student outside it gives a degenerate study (no / only failures)


def degenerate_student(s: dict) -> bool:
    """The base student's success interval reaches outside ``STUDENT_RANGE``."""
    lo, hi = s.get("lo"), s.get("hi")
    return lo is not None and hi is not None and (hi < STUDENT_RANGE[0] or lo > STUDENT_RANGE[1])


def key_numbers(overall: pd.DataFrame, thresholds: dict, corr: dict, predictor: dict, sel: dict) -> dict:
    base = overall[overall["model_id"] == BASE_MODEL_ID]
    b = base.iloc[0] if len(base) else None
    out = {
        "student_success": None if b is None else {
            "p": num(b["success_rate"]), "lo": num(b["success_lo"]), "hi": num(b["success_hi"]), "n": int(b["n"]),
            "n_tasks": int(b["n_tasks"]) if "n_tasks" in base.columns and num(b["n_tasks"]) is not None else None},
        "n_labeled": thresholds.get("n"),
        "quadrant_sizes": thresholds.get("sizes"),
        "U_threshold": num(thresholds.get("U_threshold")), "L_threshold": num(thresholds.get("L_threshold")),
        "n_microtrained": corr.get("n"),
        "predictor": {k: predictor.get(k) for k in ("n_snapshots", "n_tasks", "n_folds")},
        "selection_k": sel.get("k"), "selection_candidates": sel.get("n_candidates"), "selection_format": sel.get("format"),
        "selection_methods": {m: {"gain": e.get("reliability_gain"), "value": e.get("value"), "cost": e.get("cost"),
                                  "oracle_oof": e.get("oracle_oof"), "target_marginal": e.get("target_marginal"),
                                  "drift": e.get("drift")}
                              for m, e in (sel.get("methods") or {}).items()},
    }  # fmt: skip
    return out


def selection_markdown(methods: dict) -> list[str]:
    """Per selection method, its gain beside what its signal cost and its set's fresh value."""
    lines = []
    for m, e in methods.items():
        g, v, o = e.get("gain") or {}, e.get("value") or {}, e.get("oracle_oof")
        line = (f"  - {m}: gain {fmt(g.get('delta'))} {fmt_ci(g.get('lo'), g.get('hi'))} (n = {g.get('n_model')}); "
                f"signal cost {cost_text(e['cost']) if e.get('cost') else 'n/a'}; the set's fresh gain_net"
                f"({v.get('format')}) {fmt(v.get('gain_net'))} {fmt_ci(v.get('lo'), v.get('hi'))}, n = {v.get('n')} "
                f"rollouts per condition on {v.get('n_snapshots')} snapshots")  # fmt: skip
        if o:
            line += (f"; out of fold ({o['measured_on']}) {fmt(o.get('gain_net'))} {fmt_ci(o.get('lo'), o.get('hi'))}, "
                     f"n = {o.get('n_snapshots')} snapshots")  # fmt: skip
        if e.get("target_marginal") is not None:
            line += f"; targets {marginal_text(e['target_marginal'])}; {drift_text(e.get('drift'))}"
        lines.append(line)
    return lines


def build_summary(*, correlation: dict, transfer: pd.DataFrame, retention: pd.DataFrame, overall: pd.DataFrame,
                  thresholds: dict, predictor: dict, selection: dict, retention_threshold: float,
                  alpha: float = 0.05, inputs: dict | None = None, protocol: dict | None = None,
                  trained_runs: Sequence[str] | None = None, locality: dict | None = None,
                  control: dict | None = None) -> dict:  # fmt: skip
    """The checks (``checks``), the key numbers and the protocol numbers; ``locality``: the
    transfer check's interval (``evaluation_tables.transfer_locality``), None = undetermined;
    ``control``: the positive control (``checks.check_positive_control``): where it failed, the
    checks of trained models are marked not interpretable (``checks.gate_checks``)."""
    trained = RUN_IDS if trained_runs is None else tuple(trained_runs)
    checks = [
        check_cpt(correlation),
        check_beyond_headroom(correlation),
        check_transfer_diagonal(transfer, locality, quadrant_runs(trained)),
        check_retention(retention, retention_threshold, trained),
        check_predictor(predictor),
        check_selection_predictor(selection, alpha),
        check_oracle_vs_learnability(selection, alpha),
    ]
    if control is not None:
        checks = gate_checks(checks, control)
    return {"control": control, "checks": checks, "key_numbers": key_numbers(overall, thresholds, correlation, predictor, selection),
            "protocol": protocol, "settings": {"retention_threshold": retention_threshold, "alpha": alpha},
            "inputs": inputs or {}}  # fmt: skip


MARK = {True: "✔", False: "✘", None: "—"}
NOT_INTERPRETABLE = "⊘"


def control_markdown(control: dict | None, checks: list[dict]) -> list[str]:
    """The positive control's line, first in the summary; where it failed, which checks it voids."""
    if control is None:
        return []
    if control["held"]:
        return [f"**Positive control held**: {control['detail']}. The checks of trained models are read below.", ""]
    void = [f"({'abcdefgh'[i]})" for i, c in enumerate(checks) if c.get("not_interpretable")]
    return [f"**⚠ Positive control failed**: {control['detail'].removeprefix('failed: ')}. Training at these settings is not shown to improve "
            f"the base, so the checks that compare trained models, {', '.join(void)}, are not interpretable "
            f"({NOT_INTERPRETABLE}): their numbers are shown, their verdicts are not read.", ""]  # fmt: skip


def summary_markdown(summary: dict) -> str:
    lines = ["# Study summary", "", *control_markdown(summary.get("control"), summary["checks"]),
             "Each check is computed from the phase outputs: ✔ held (its interval supports the claim), ✘ not held "
             "(its interval excludes the claim), — undetermined (neither; the interval is shown)"
             + (f", {NOT_INTERPRETABLE} not interpretable (the positive control failed)" if summary.get("control") else "")
             + ".", ""]  # fmt: skip
    for i, c in enumerate(summary["checks"]):
        mark = NOT_INTERPRETABLE if c.get("not_interpretable") else MARK[c["held"]]
        lines.append(f"- {mark} **({'abcdefgh'[i]}) {c['claim']}**: {c['detail']}")
    k = summary["key_numbers"]
    s = k.get("student_success") or {}
    lines += ["", "## Key numbers", ""]
    if s:
        lines.append(f"- Student (base) success on eval tasks: {fmt(s.get('p'))} {fmt_ci(s.get('lo'), s.get('hi'))}, "
                     f"n = {s.get('n')} rollouts" + (f" on {s['n_tasks']} tasks" if s.get("n_tasks") else ""))  # fmt: skip
        if degenerate_student(s):
            lo_, hi_ = STUDENT_RANGE
            lines.append(f"- ⚠ The student's success interval lies outside [{lo_}, {hi_}]: with a student that almost "
                         "never (or almost always) succeeds, failure states, leverage and CPT gains say little. Train "
                         "it longer (student.init) or pick an easier level / goal before reading the checks.")  # fmt: skip
    sizes = k.get("quadrant_sizes") or {}
    lines.append(f"- Labeled snapshots: {k.get('n_labeled')}; quadrant sizes "
                 + ", ".join(f"{short(q)} {n}" for q, n in sizes.items())
                 + f" (high = U > {fmt(k.get('U_threshold'))}, L_local > {fmt(k.get('L_threshold'))})")  # fmt: skip
    lines.append(f"- Micro-trained snapshots (Phase 1B): {k.get('n_microtrained')}")
    p = k.get("predictor") or {}
    lines.append(f"- Predictor (Phase 4): {p.get('n_snapshots')} snapshots, {p.get('n_tasks')} tasks, "
                 f"{p.get('n_folds')} task-grouped folds")  # fmt: skip
    lines.append(f"- Selection (Phase 5): K = {k.get('selection_k')} of {k.get('selection_candidates')} candidates, "
                 f"format {k.get('selection_format')}" + ("; per method, gain beside cost:" if
                                                         k.get("selection_methods") else ""))  # fmt: skip
    lines += selection_markdown(k.get("selection_methods") or {})
    if summary.get("protocol"):
        lines += protocol_markdown(summary["protocol"])
    if summary.get("reliability"):
        lines += reliability_markdown(summary["reliability"])
    st = summary.get("settings", {})
    lines += ["", f"Settings: retention threshold {st.get('retention_threshold')}, alpha {st.get('alpha')} (selection "
              "comparisons). Verdicts rest on intervals or (Holm-adjusted) p-values, never on two point estimates "
              "(reporting module docstring).", ""]
    return "\n".join(lines)


def summary_from_files(*, correlation, transfer, retention, overall, thresholds, predictor, selection,
                       labeled, hint_audit, training, mining, eval_rollouts, teacher_failures,
                       retention_threshold: float, out_json, reliability=None,
                       out_md, alpha: float = 0.05, confidence: float = 0.95, n_bootstrap: int = 2000,
                       seed: int = 0) -> dict:  # fmt: skip
    inputs = {"correlation": correlation, "transfer": transfer, "retention": retention, "overall": overall,
              "thresholds": thresholds, "predictor": predictor, "selection": selection, "labeled": labeled,
              "hint_audit": hint_audit, "training": training, "mining": mining, "eval_rollouts": eval_rollouts,
              "teacher_failures": teacher_failures}  # fmt: skip
    corr = read_report(correlation, CPT_CORRELATION)
    sel = read_selection(selection)
    train = read_report(training, TRAINING_SUMMARY)
    rollouts = read_input(eval_rollouts, ALL_EVAL_ROLLOUTS, "Phase 3 rollouts")
    protocol = protocol_numbers(
        labeled=read_input(labeled, LABELED, "labeled snapshots"),
        hint_audit=read_report(hint_audit, HINT_AUDIT), corr=corr, training=train,
        mining=read_report(mining, MINING_SUMMARY),
        eval_rollouts=rollouts,
        selection=sel, teacher_failures=read_failures(teacher_failures), confidence=confidence,
        n_bootstrap=n_bootstrap, seed=seed,
    )  # fmt: skip
    retention_df = read_input(retention, PHASE3_TABLES["retention"], "retention results")
    summary = build_summary(
        correlation=corr,
        transfer=read_input(transfer, PHASE3_TABLES["transfer"], "transfer matrix"),
        retention=retention_df,
        overall=read_input(overall, PHASE3_TABLES["overall"], "overall task results"),
        thresholds=read_report(thresholds, THRESHOLDS),
        predictor=read_predictor(predictor), selection=sel, retention_threshold=retention_threshold, alpha=alpha,
        inputs={k: str(v) for k, v in inputs.items()}, protocol=protocol, trained_runs=sorted(train["runs"]),
        locality=transfer_locality(rollouts, confidence, n_bootstrap, seed, quadrant_runs(train["runs"])),
        control=check_positive_control({r: snapshot_gain(rollouts, r, confidence, n_bootstrap, seed)
                                        for r in CONTROL_RUNS}, retention_df, retention_threshold),
    )  # fmt: skip
    if reliability is not None:
        summary["inputs"]["reliability"] = str(reliability)
        summary["reliability"] = reliability_numbers(read_report(reliability, LABEL_RELIABILITY), corr)
    write_doc(summary, SUMMARY, out_json)
    with atomic_path(out_md) as tmp:
        tmp.write_text(summary_markdown(summary))
    for c in [summary["control"], *summary["checks"]]:
        log.info("%s %s: %s", NOT_INTERPRETABLE if c.get("not_interpretable") else MARK[c["held"]], c["id"], c["detail"])
    return summary


