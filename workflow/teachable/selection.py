"""Phase 5: the selection experiment. Which failures should a fixed training budget go to?

At budget K, each method picks K snapshots from the same candidate pool, one LoRA model is
trained per method with identical settings, and each model is evaluated by the Phase 3 suite.

Choices:
- Candidates: the labeled snapshots that Phase 2 may train on (``matrix.heldout_split``: the
  held-out snapshots are Phase 3's per-quadrant eval set and never a candidate).
- RANDOM: the first K in ``derive_seed(seed, "phase5", "random", snapshot_id)`` order (ties by id).
- ENTROPY: the K highest U (the student's entropy over valid actions); ties by snapshot_id.
- LEARNABILITY: the K highest p_policy * (1 - p_policy), the variance of the student's success
  from the snapshot (the learnability rule of success-variance sampling for LLM RL): it needs
  one rollout condition (p_policy) and no teacher; ties by snapshot_id.
- LEARNABILITY_EQ: the same rule at ORACLE's cost: p_policy from fresh policy rollouts, as many
  at each candidate as ORACLE's student rollouts there (``selection_costs.oracle_rollouts``),
  keyed ``rollout_key(seed, EQ_SCOPE, snapshot, i)``; ties by snapshot_id.
- PREDICTOR: the K highest predicted ELP_net from the Phase 4 predictor, *cross-fitted*: each
  candidate is scored by the fold model that was trained without its task (and so without its
  own label). A missing or unloadable predictor is an error, never a fallback.
- ORACLE: the K highest gain_net of the format Phase 5 trains (``phase5.format``), out of fold:
  ranked by the gain on the even rollout indices of the labels (``labeling.Rollouts``,
  ``crossfit_halves``), its value reported on the odd ones (``oracle_oof``); ties by
  snapshot_id. Phase 1B's micro-training delta is not used: it exists for the gate sample only
  (a ranking that mixed it with gain_net for the other candidates would mix two scales) and
  trains each snapshot's route_net format, not ``phase5.format``.
- Training: every method uses ``phase2.lora`` and the ``phase5.format`` supervision format
  (default demo, as the B1/B2 baselines), so methods differ only in which snapshots they pick.
- The value of a selected set: its gain_net of ``phase5.format`` on fresh rollouts of the base
  student, never the statistic that selected it: ``phase5.value_rollouts`` rollouts per selected
  snapshot with the format's patch and as many with its placebo, rollout i of both keyed
  ``rollout_key(seed, VALUE_SCOPE, snapshot, i)`` (``value_rollouts``; a snapshot two methods
  select is played alike for both).
- Cost: each method's signal cost (``selection_costs.signal_cost``) is recorded beside its set.

Summary (``selection_summary``; on the Phase 3 overall suite; every interval a percentile
bootstrap over eval tasks, ``evaluation_tables``' rules):
- per method: success; reliability gain = success(method) - success(base), paired over tasks;
  retention drop on the tasks the base solves (chosen on the base's first half of rollouts,
  measured on the second); the selected set's fresh value (``set_value``: interval over the
  snapshots' tasks, paired); ORACLE's out-of-fold gain (Student-t over its snapshots); the
  signal cost; the set's overlap with ORACLE's.
- ``comparisons`` (every selection model played the same eval tasks with the same random
  streams, so each comparison is paired):
  - PREDICTOR vs each of RANDOM, ENTROPY and LEARNABILITY that is present: difference of
    success rates (PREDICTOR - baseline) with a paired cluster-bootstrap interval and a paired
    permutation p over per-task success rates (two-sided), Holm-adjusted over those (up to
    three) comparisons. ``best_baseline`` is the one with the highest point reliability gain
    (ties: the order of ``SELECTION_METHODS``); choosing it after the fact is covered because
    Holm controls the error over all of the comparisons.
  - ORACLE vs LEARNABILITY_EQ: is CPT's full labelling worth its cost, at equal student
    rollouts? The same difference, interval and p (a single comparison, no adjustment); ORACLE vs
    LEARNABILITY (at LEARNABILITY's own, Phase 1 cost) beside it.
  A comparison whose models are missing is null with its reason.
"""

from __future__ import annotations

from contextlib import contextmanager
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .constants import FORMATS, SELECTION_METHODS
from .stats import DEFAULT_N_BOOTSTRAP, ClusterBootstrap, holm, mean_interval, paired_permutation_test

log = logging.getLogger(__name__)

METHODS = SELECTION_METHODS
MODEL_PREFIX = "select_"
BASELINE_METHODS = ("RANDOM", "ENTROPY", "LEARNABILITY")  # what PREDICTOR must beat
N_PERMUTATIONS = 9999
VALUE_SCOPE = "phase5-value"  # the keys of the selected sets' fresh value rollouts
EQ_SCOPE = "phase5-learnability-eq"  # the keys of LEARNABILITY_EQ's policy rollouts
ORACLE_HALVES = ("even rollout indices", "odd rollout indices")  # ORACLE ranks on the first, reports the second


def model_id(method: str) -> str:
    """The model id of a method's trained model in rollouts and tables (``select_ORACLE``)."""
    return MODEL_PREFIX + check_method(method)


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown selection method {method!r}; expected one of {METHODS}")
    return method


def candidates(labeled: pd.DataFrame, heldout: dict) -> pd.DataFrame:
    """The snapshots any method may select: every labeled snapshot not held out by the study's
    one split (phase2/heldout.json)."""
    from .splits import apply_heldout

    split = apply_heldout(labeled, heldout)
    return split[~split["heldout"]].drop(columns="heldout").reset_index(drop=True)


def budget(cfg_p5: dict, n_candidates: int) -> int:
    k = int(cfg_p5["budget"])
    if k > n_candidates:
        raise ValueError(f"phase5.budget={k} exceeds the {n_candidates} candidate snapshots "
                         "(labeled, not held out); lower it or label more snapshots")
    return k


def _top_k(cands: pd.DataFrame, score: np.ndarray, k: int) -> pd.DataFrame:
    """The k rows with the highest score, ties by snapshot_id; the score is kept as a column."""
    out = cands.assign(selection_score=np.asarray(score, dtype=float))
    if out["selection_score"].isna().any():
        bad = out.loc[out["selection_score"].isna(), "snapshot_id"].iloc[0]
        raise ValueError(f"selection score is NaN for snapshot {bad!r}")
    out = out.assign(_neg=-out["selection_score"]).sort_values(["_neg", "snapshot_id"], kind="mergesort")
    return out.drop(columns="_neg").head(k).reset_index(drop=True)


def learnability(cands: pd.DataFrame, p=None) -> np.ndarray:
    """p * (1 - p): the variance of the student's success from each snapshot; p is p_policy of
    the labels unless given (one value per candidate)."""
    if p is None:
        if "p_policy" not in cands.columns:
            raise ValueError("LEARNABILITY selection needs the labeled column 'p_policy' (phase 1 leverage)")
        p = cands["p_policy"]
    p = np.asarray(p, dtype=float)
    bad = ~((p >= 0) & (p <= 1))
    if bad.any():
        raise ValueError(f"p_policy = {p[bad][0]!r} for snapshot {cands['snapshot_id'].iloc[np.flatnonzero(bad)[0]]!r} "
                         "is not a probability")  # fmt: skip
    return p * (1 - p)


def oracle_gains(cands: pd.DataFrame, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate, gain_net of ``fmt`` (p_fmt - p_placebo_fmt, ``labeling.Rollouts.means``) on
    the even rollout indices of its labels (ORACLE ranks by it) and on the odd ones (its
    out-of-fold value): ``labeling.crossfit_halves``."""
    from .labeling import Rollouts, crossfit_halves, estimator_of

    if fmt not in FORMATS:
        raise ValueError(f"phase5.format={fmt!r} is not a supervision format; expected one of {FORMATS}")
    est, conds = estimator_of(cands), (fmt, f"placebo_{fmt}")
    out = np.full((len(cands), 2), np.nan)
    for j, (_, r) in enumerate(cands.iterrows()):
        y = Rollouts.of(r, est, conds)
        for h, idx in enumerate(crossfit_halves(y.n)):
            m = y.means(idx)
            out[j, h] = m[fmt] - m[conds[1]]
    return out[:, 0], out[:, 1]


def select(cands: pd.DataFrame, method: str, k: int, seed: int, *, fmt: str | None = None, predictor_dir=None,
           eq_outcomes: dict | None = None) -> pd.DataFrame:  # fmt: skip
    """The k candidates ``method`` picks, with the score it ranked them by (``selection_score``).
    ORACLE needs the trained format ``fmt`` (and keeps each pick's odd-half gain, ``oof_gain``);
    LEARNABILITY_EQ its rollouts' outcomes per candidate (``eq_outcomes``: snapshot id -> 0/1
    array); PREDICTOR the Phase 4 predictor directory."""
    check_method(method)
    if method == "RANDOM":  # score = minus the position in the seeded order (first = highest)
        from .splits import seeded_order

        pos = pd.Series(np.arange(len(cands)), index=seeded_order(cands["snapshot_id"], int(seed), "phase5", "random"))
        return _top_k(cands, -pos.reindex(cands.index).to_numpy(dtype=float), k)
    if method == "ENTROPY":
        return _top_k(cands, cands["U"].to_numpy(), k)
    if method == "LEARNABILITY":
        return _top_k(cands, learnability(cands), k)
    if method == "LEARNABILITY_EQ":
        if eq_outcomes is None:
            raise ValueError("LEARNABILITY_EQ selection needs its policy rollouts at every candidate (eq_outcomes)")
        missing = [s for s in cands["snapshot_id"] if s not in eq_outcomes]
        if missing:
            raise ValueError(f"LEARNABILITY_EQ has no policy rollouts at candidate {missing[0]!r}")
        p = [float(np.mean(eq_outcomes[s])) for s in cands["snapshot_id"]]
        return _top_k(cands.assign(eq_p_policy=p), learnability(cands, p), k)
    if method == "ORACLE":
        if fmt is None:
            raise ValueError("ORACLE selection needs the trained format (phase5.format)")
        rank, report = oracle_gains(cands, fmt)
        return _top_k(cands.assign(oof_gain=report), rank, k)
    if predictor_dir is None:
        raise ValueError("PREDICTOR selection needs the Phase 4 predictor directory (--predictor)")
    from .predictor import load_crossfit_predictor

    pred = load_crossfit_predictor(predictor_dir).predict_elp(cands)
    return _top_k(cands, pred, k)


# ------------------------------------------------------------------------------------ fresh rollouts
def eq_specs(cands: pd.DataFrame, counts, seed: int) -> list:
    """LEARNABILITY_EQ's rollouts: ``counts[j]`` unpatched student rollouts from candidate j, key
    (snapshot, "policy", i), stream ``rollout_key(seed, EQ_SCOPE, snapshot, i)``."""
    from .rollouts import RolloutSpec
    from .seeding import rollout_key

    return [RolloutSpec(env_id=r["env_id"], seed=int(r["seed"]), prefix=tuple(r["actions"]),
                        key=(r["snapshot_id"], "policy", i), stream=rollout_key(seed, EQ_SCOPE, r["snapshot_id"], i))
            for (_, r), n in zip(cands.iterrows(), counts, strict=True) for i in range(int(n))]  # fmt: skip


def value_specs(chosen: pd.DataFrame, fmt: str, n: int, seed: int, spaces=None) -> list:
    """The fresh value rollouts of a selected set: per snapshot, ``n`` rollouts with ``fmt``'s
    patch and ``n`` with its placebo (the labels' advice, ``labeling.labeled_patches``; ``spaces``:
    the run's ``registry.StateSpaces``, where the family's candidates are a state's), rollout i
    of both keyed ``rollout_key(seed, VALUE_SCOPE, snapshot, i)``."""
    from .labeling import labeled_patches
    from .rollouts import RolloutSpec
    from .seeding import rollout_key

    specs = []
    for _, r in chosen.iterrows():
        patches, sid = labeled_patches(r, spaces), r["snapshot_id"]
        for i in range(int(n)):
            stream = rollout_key(seed, VALUE_SCOPE, sid, i)
            specs += [RolloutSpec(env_id=r["env_id"], seed=int(r["seed"]), prefix=tuple(r["actions"]),
                                  patch=patches[c], key=(sid, c, i), stream=stream)
                      for c in (fmt, f"placebo_{fmt}")]  # fmt: skip
    return specs


def value_rollouts(chosen: pd.DataFrame, fmt: str, outs: dict) -> dict[str, Any]:
    """selected.json's ``value_rollouts``: per selected snapshot, its task and the 0/1 outcomes of
    the fresh rollouts with ``fmt``'s patch and with its placebo (``outs``: ``labeling.outcomes``)."""
    snaps = [{"snapshot_id": sid, "task_id": str(t), "y_format": outs[(sid, fmt)].tolist(),
              "y_placebo": outs[(sid, f"placebo_{fmt}")].tolist()}
             for sid, t in zip(chosen["snapshot_id"], chosen["task_id"])]  # fmt: skip
    n = {len(s["y_format"]) for s in snaps} | {len(s["y_placebo"]) for s in snaps}
    return {"format": fmt, "scope": VALUE_SCOPE, "n_per_snapshot": n.pop() if len(n) == 1 else None,
            "snapshots": snaps}  # fmt: skip


def set_value(rec: dict, bs: ClusterBootstrap) -> dict[str, Any]:
    """The fresh gain_net of a selected set (``value_rollouts`` of its selected.json): success with
    the format's patch - success with its placebo over the fresh rollouts, with a paired
    percentile-bootstrap interval over the snapshots' tasks; n = rollouts per condition."""
    snaps = rec["snapshots"]
    if not snaps:
        raise ValueError("a selected set without value rollouts")
    ya = np.concatenate([np.asarray(s["y_format"], float) for s in snaps])
    yb = np.concatenate([np.asarray(s["y_placebo"], float) for s in snaps])
    task = np.concatenate([[s["task_id"]] * len(s["y_format"]) for s in snaps])
    if len(ya) != len(yb):
        raise ValueError(f"the value rollouts are unpaired: {len(ya)} with the {rec['format']} patch, {len(yb)} with "
                         "its placebo")  # fmt: skip
    d = bs.diff(ya, task, yb, task, paired=True)
    return {"gain_net": d["value"], "lo": d["lo"], "hi": d["hi"], "format": rec["format"], "n": d["n_a"],
            "n_snapshots": len(snaps), "n_tasks": d["n_clusters"], "reason": d["reason"], "scope": rec["scope"],
            "method": f"success({rec['format']}) - success(placebo) on fresh rollouts of the base student, "
                      "percentile bootstrap over tasks"}  # fmt: skip


@contextmanager
def base_student(model_dir, cfg: dict):
    """The base student of a Phase 5 job, loaded once for all its fresh rollouts, closed after."""
    from .policies import make_student

    policy = make_student(cfg["student"], model_dir, env_id=cfg["env"]["id"])
    try:
        yield policy
    finally:
        policy.close()


def _play(specs: list, policy, cfg: dict, desc: str, progress: bool) -> dict:
    """``policy`` (``base_student``) plays ``specs``: ``labeling.outcomes`` of the results."""
    from .labeling import outcomes
    from .rollouts import study_rollouts

    return outcomes(study_rollouts(specs, policy, cfg, desc=desc, progress=progress))


# ------------------------------------------------------------------------------------ one job
def train_selected(method: str, labeled_path, heldout_path, plan_path, model_dir, cfg: dict, out_dir,
                   predictor_dir=None, progress: bool = True, rollouts_path=None) -> dict[str, Any]:  # fmt: skip
    """One Phase 5 job: select (LEARNABILITY_EQ: after its policy rollouts), measure the set's
    value on fresh rollouts, count the signal's cost, write ``selected.json``, train
    (``adapter/``, ``train_log.json``) with Phase 2's anchor (``matrix.anchor_and_drift`` on phase
    0's ``rollouts_path``), logging the set's target marginal and the model's drift."""
    from .documents import HELDOUT, PLAN, SELECTED
    from .io import read_doc, read_parquet, write_doc
    from .matrix import anchor_and_drift, training_examples
    from .selection_costs import oracle_rollouts, signal_cost
    from .training import train_lora

    from .config import section

    p5, seed = section("phase5", cfg["phase5"]), int(cfg["seed"])
    plan = read_doc(plan_path, PLAN)["selection"]
    if not plan["run"]:
        raise ValueError(f"the plan {plan_path} does not run Phase 5: {plan['reason']}")
    labeled = read_parquet(labeled_path)
    cands = candidates(labeled, read_doc(heldout_path, HELDOUT))
    k, fmt = budget(p5, len(cands)), p5["format"]
    eq_n = eq = fit = None
    if method == "PREDICTOR" and predictor_dir is not None:
        from .predictor import load_crossfit_predictor

        fit = labeled[labeled["task_id"].astype(str).isin(load_crossfit_predictor(predictor_dir).fold_of_task)]
    with base_student(model_dir, cfg) as policy:
        if method == "LEARNABILITY_EQ":
            eq_n = oracle_rollouts(cands)
            eq = _play(eq_specs(cands, eq_n, seed), policy, cfg, "phase5 LEARNABILITY_EQ rollouts", progress)
            eq = {sid: eq[(sid, "policy")] for sid in cands["snapshot_id"]}
        chosen = select(cands, method, k, seed, fmt=fmt, predictor_dir=predictor_dir, eq_outcomes=eq)
        from .envs.registry import StateSpaces

        spaces = StateSpaces.of_config(cfg["env"])
        outs = _play(value_specs(chosen, fmt, int(p5["value_rollouts"]), seed, spaces), policy, cfg,
                     f"phase5 {method} value rollouts", progress)  # fmt: skip
    out_dir = Path(out_dir)
    oracle_ids = set(select(cands, "ORACLE", k, seed, fmt=fmt)["snapshot_id"])
    sel = {
        "method": method, "k": k, "format": fmt, "seed": seed, "n_candidates": int(len(cands)),
        "selected_ids": chosen["snapshot_id"].tolist(),
        "selection_scores": chosen["selection_score"].round(6).tolist(),
        "oracle_overlap": len(oracle_ids & set(chosen["snapshot_id"])) / k,
        "oracle_oof": {"rank": ORACLE_HALVES[0], "report": ORACLE_HALVES[1], "format": fmt,
                       "gains": chosen["oof_gain"].tolist()} if method == "ORACLE" else None,
        "eq_rollouts": {"scope": EQ_SCOPE, "n": [int(v) for v in eq_n],
                        "successes": [int(np.sum(eq[s])) for s in cands["snapshot_id"]],
                        "snapshot_ids": cands["snapshot_id"].tolist()} if eq is not None else None,
        "value_rollouts": value_rollouts(chosen, fmt, outs),
        "cost": signal_cost(method, cands, eq_rollouts=eq_n, fit_labels=fit),
        "quadrants": chosen["quadrant"].value_counts().sort_index().to_dict(),
        "predictor": str(predictor_dir) if method == "PREDICTOR" else None,
    }  # fmt: skip
    log.info("%s: %d of %d candidates, signal cost %d student rollouts and %d teacher calls, oracle overlap %.2f",
             method, k, len(cands), sel["cost"]["student_rollouts"], sel["cost"]["teacher_calls"],
             sel["oracle_overlap"])  # fmt: skip
    examples = training_examples(chosen, fmt)
    anchor, _, drift = anchor_and_drift(rollouts_path, labeled, read_doc(heldout_path, HELDOUT)["task_ids"],
                                        len(examples), cfg)  # fmt: skip
    meta = {"run_id": model_id(method), "method": method, "format": fmt, "budget": k}
    out = train_lora(model_dir, examples, cfg["phase2"]["lora"], out_dir, progress=progress, meta=meta,
                     student=cfg.get("student"), env_id=cfg["env"]["id"], anchor=anchor, drift=drift)  # fmt: skip
    if out["optimizer_steps"] != plan["optimizer_steps"]:
        raise AssertionError(f"{method} trained {out['optimizer_steps']} steps, the plan says {plan['optimizer_steps']}")
    sel.update(target_marginal=out["target_marginal"], anchor_examples=out["anchor_examples"], drift=out["drift"])
    write_doc(sel, SELECTED, out_dir / "selected.json")  # last: a killed job leaves none of its outputs
    return out


# ------------------------------------------------------------------------------------ summary
def _overall(rollouts: pd.DataFrame, method: str) -> pd.DataFrame:
    ov = rollouts[(rollouts["suite"] == "overall") & (rollouts["model_id"] == model_id(method))]
    if ov.empty:
        raise ValueError(f"no overall-suite rollouts for {model_id(method)}")
    return ov


def compare_methods(rollouts: pd.DataFrame, model: str, baseline: str, bs: ClusterBootstrap) -> dict:
    """success(model) - success(baseline) on the overall suite: paired cluster-bootstrap interval
    over tasks and a paired permutation p over per-task success rates (null, with the reason,
    when the two played different tasks or the test is undefined)."""
    from .evaluation_tables import diff_of

    gm, gb = _overall(rollouts, model), _overall(rollouts, baseline)
    d = diff_of(bs, gm, gb, "success", "task_id")
    test = {"name": "paired permutation test of per-task success rates (sign flips, two-sided)",
            "p_value": None, "n_units": None, "exact": None, "reason": "the two models played different eval tasks"}
    if d["paired"]:
        both = pd.concat([gm.groupby("task_id")["success"].mean().rename("m"),
                          gb.groupby("task_id")["success"].mean().rename("b")], axis=1)  # fmt: skip
        t = paired_permutation_test(both["m"].to_numpy(float), both["b"].to_numpy(float), N_PERMUTATIONS, bs.seed)
        test.update(p_value=t["p_value"], n_units=t["n_units"], exact=t["exact"], reason=t["reason"])
    return {"model": model, "baseline": baseline,
            "difference": {"value": d["value"], "lo": d["lo"], "hi": d["hi"], "paired": d["paired"],
                           "n_tasks": d.get("n_clusters"), "n_model": d["n_a"], "n_baseline": d["n_b"],
                           "reason": d["reason"], "method": "success(model) - success(baseline), percentile "
                                                             "bootstrap over eval tasks"},
            "test": test, "p_value": test["p_value"]}  # fmt: skip


def best_baseline(gains: dict[str, float]) -> str | None:
    """The baseline method with the highest point reliability gain (ties: ``METHODS`` order)."""
    present = [m for m in BASELINE_METHODS if m in gains and np.isfinite(gains[m])]
    return max(present, key=lambda m: (gains[m], -METHODS.index(m))) if present else None


def comparisons(rollouts: pd.DataFrame, methods, gains: dict[str, float], bs: ClusterBootstrap) -> dict[str, Any]:
    """PREDICTOR vs each baseline present (Holm over them), ORACLE vs LEARNABILITY_EQ (equal cost)
    and ORACLE vs LEARNABILITY."""
    present = [m for m in BASELINE_METHODS if m in methods]
    out: dict[str, Any] = {
        "best_baseline": best_baseline({m: gains[m] for m in present}),
        "best_baseline_rule": "highest point reliability gain among " + ", ".join(BASELINE_METHODS)
                              + " (ties: method order)",
        "predictor_vs_baselines": [], "predictor_reason": None, "oracle_vs_learnability_eq": None,
        "oracle_reason_eq": None, "oracle_vs_learnability": None, "oracle_reason": None,
        "holm_family": "PREDICTOR vs each baseline present",
    }  # fmt: skip
    if "PREDICTOR" in methods and present:
        rows = [compare_methods(rollouts, "PREDICTOR", b, bs) for b in present]
        for r, ph in zip(rows, holm([r["p_value"] for r in rows])):
            r["p_holm"] = ph
        out["predictor_vs_baselines"] = rows
    else:
        out["predictor_reason"] = f"needs PREDICTOR and one of {BASELINE_METHODS}; methods: {sorted(methods)}"
    for key, reason, base in (("oracle_vs_learnability_eq", "oracle_reason_eq", "LEARNABILITY_EQ"),
                              ("oracle_vs_learnability", "oracle_reason", "LEARNABILITY")):  # fmt: skip
        if {"ORACLE", base} <= set(methods):
            out[key] = compare_methods(rollouts, "ORACLE", base, bs)
        else:
            out[key], out[reason] = None, f"needs ORACLE and {base}; methods: {sorted(methods)}"
    return out


def _oof(sel: dict, confidence: float) -> dict[str, Any] | None:
    """ORACLE's out-of-fold gain: the mean over its picks of their gain_net on the half of the
    label rollouts that did not rank them, with a Student-t interval over the picks."""
    o = sel.get("oracle_oof")
    if not o:
        return None
    m = mean_interval(o["gains"], confidence)
    return {"gain_net": m["mean"], "lo": m["lo"], "hi": m["hi"], "n_snapshots": m["n"], "format": o["format"],
            "ranked_on": o["rank"], "measured_on": o["report"]}  # fmt: skip


def _method_entry(method: str, sel: dict, ov: pd.Series, ret: pd.Series, n_base: int,
                  bs: ClusterBootstrap) -> dict[str, Any]:  # fmt: skip
    return {
        "model_id": model_id(method),
        "selected_ids": sel["selected_ids"],
        "quadrants": sel.get("quadrants", {}),
        "value": set_value(sel["value_rollouts"], bs),
        "oracle_oof": _oof(sel, bs.confidence),
        "cost": sel["cost"],
        "oracle_overlap": sel["oracle_overlap"],
        "target_marginal": sel.get("target_marginal"), "anchor_examples": sel.get("anchor_examples"),
        "drift": sel.get("drift"),
        "success": {"p": float(ov["success_rate"]), "n": int(ov["n"]), "lo": float(ov["success_lo"]),
                    "hi": float(ov["success_hi"]), "n_tasks": int(ov["n_tasks"])},
        "reliability_gain": {"delta": float(ov["gain_vs_base"]), "lo": float(ov["gain_lo"]),
                             "hi": float(ov["gain_hi"]), "n_model": int(ov["n"]), "n_base": n_base,
                             "paired": bool(ov["gain_paired"]), "n_tasks": int(ov["n_tasks"])},
        "retention": {"drop": float(ret["drop"]), "lo": float(ret["drop_lo"]), "hi": float(ret["drop_hi"]),
                      "n": int(ret["n"]), "n_tasks": int(ret["n_tasks"]),
                      "n_base_solved_tasks": None if pd.isna(ret["n_base_solved_tasks"])
                      else int(ret["n_base_solved_tasks"]),
                      "base_success": float(ret["base_success"]), "model_success": float(ret["model_success"]),
                      "reason": None if pd.isna(ret["reason"]) else str(ret["reason"])},
    }  # fmt: skip


def summarize_selection(rollouts: pd.DataFrame, selected: dict[str, dict], plan_selection: dict, confidence: float,
                        n_bootstrap: int, seed: int) -> dict[str, Any]:  # fmt: skip
    """phase5/selection_summary.json: ``selection_summary``, or, when the plan skipped Phase 5,
    the reason (``skipped``) with K and the candidates."""
    if not plan_selection["run"]:
        log.warning("Phase 5 was not run: %s", plan_selection["reason"])
        return {"skipped": plan_selection["reason"], "k": plan_selection["k"],
                "n_candidates": plan_selection["n_candidates"], "methods": {}}  # fmt: skip
    return selection_summary(rollouts, selected, confidence, n_bootstrap=n_bootstrap, seed=seed)


def selection_summary(rollouts: pd.DataFrame, selected: dict[str, dict], confidence: float,
                      n_bootstrap: int = DEFAULT_N_BOOTSTRAP, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Per method: success, reliability gain vs the base, retention drop (all with n and
    intervals over tasks), the selected set's fresh value, ORACLE's out-of-fold gain, the
    signal's cost, and the ``comparisons`` between methods (module docstring), from
    Phase 3-style rollouts of the base (``base``) and ``select_{method}``; ``selected``: method ->
    its selected.json, any subset of ``METHODS`` in any order."""
    from .evaluation_tables import BASE_ID, overall_table, retention_table

    for m in selected:
        check_method(m)
    bs = ClusterBootstrap(confidence, n_bootstrap, seed)
    ov = overall_table(rollouts, confidence, n_bootstrap, seed).set_index("model_id")
    if BASE_ID not in ov.index:
        raise ValueError("the selection summary needs the base model's rollouts")
    ret = retention_table(rollouts, confidence, n_bootstrap, seed).set_index("model_id")
    methods = {}
    for method in [m for m in METHODS if m in selected]:
        _overall(rollouts, method)  # names the method whose rollouts are missing
        methods[method] = _method_entry(method, selected[method], ov.loc[model_id(method)],
                                        ret.loc[model_id(method)], int(ov.loc[BASE_ID, "n"]), bs)  # fmt: skip
    ks = {s["k"] for s in selected.values()}
    if len(ks) != 1:
        raise ValueError(f"selection methods used different budgets {sorted(ks)}")
    first = next(iter(selected.values()))
    b = ov.loc[BASE_ID]
    gains = {m: e["reliability_gain"]["delta"] for m, e in methods.items()}
    return {
        "k": ks.pop(), "n_candidates": first["n_candidates"], "format": first["format"],
        "confidence": confidence, "n_bootstrap": int(n_bootstrap), "seed": seed,
        "interval": "percentile bootstrap over eval tasks (paired where two models are compared)",
        "base": {"success": {"p": float(b["success_rate"]), "n": int(b["n"]), "lo": float(b["success_lo"]),
                             "hi": float(b["success_hi"]), "n_tasks": int(b["n_tasks"])}},
        "methods": methods, "comparisons": comparisons(rollouts, list(methods), gains, bs),
    }  # fmt: skip
