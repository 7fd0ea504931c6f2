"""Phase 5: the selection experiment. Which failures should a fixed training budget go to?

At budget K, four methods each pick K snapshots from the same candidate pool, one LoRA model is
trained per method with identical settings, and each model is evaluated by the Phase 3 suite.

Choices:
- Candidates: the labeled snapshots that Phase 2 may train on (``matrix.heldout_split``: the
  held-out snapshots are Phase 3's per-quadrant eval set and never a candidate).
- RANDOM: the first K in ``derive_seed(seed, "phase5", "random", snapshot_id)`` order (ties by id).
- ENTROPY: the K highest U (the student's entropy over valid actions); ties by snapshot_id.
- PREDICTOR: the K highest predicted ELP_net from the Phase 4 predictor, *cross-fitted*: each
  candidate is scored by the fold model that was trained without its task (and so without its
  own label). A missing or unloadable predictor is an error, never a fallback.
- ORACLE: the K highest true ELP_net (Phase 1 labels); ties by snapshot_id.
- Training: every method uses ``phase2.lora`` and the ``phase5.format`` supervision format
  (default demo, as the B1/B2 baselines), so methods differ only in which snapshots they pick.
- Summary per method (on the Phase 3 overall suite, against the base model's rollouts):
  success with its Wilson interval; reliability gain = success(method) - success(base) with
  Newcombe's interval; retention drop on the tasks the base solves (as Phase 3); the mean true
  ELP_net of the selected set and its overlap with ORACLE's set.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .constants import SELECTION_METHODS

log = logging.getLogger(__name__)

METHODS = SELECTION_METHODS
MODEL_PREFIX = "select_"


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
    from .matrix import apply_heldout

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


def select(cands: pd.DataFrame, method: str, k: int, seed: int, predictor_dir=None) -> pd.DataFrame:
    """The k candidates ``method`` picks, with the score it ranked them by (``selection_score``)."""
    check_method(method)
    if method == "RANDOM":  # score = minus the position in the seeded order (first = highest)
        from .matrix import _order

        pos = pd.Series(np.arange(len(cands)), index=_order(cands["snapshot_id"], int(seed), "phase5", "random"))
        return _top_k(cands, -pos.reindex(cands.index).to_numpy(dtype=float), k)
    if method == "ENTROPY":
        return _top_k(cands, cands["U"].to_numpy(), k)
    if method == "ORACLE":
        return _top_k(cands, cands["ELP_net"].to_numpy(), k)
    if predictor_dir is None:
        raise ValueError("PREDICTOR selection needs the Phase 4 predictor directory (--predictor)")
    from .predictor import load_crossfit_predictor

    pred = load_crossfit_predictor(predictor_dir).predict_elp(cands)
    return _top_k(cands, pred, k)


def train_selected(method: str, labeled_path, heldout_path, plan_path, model_dir, cfg: dict, out_dir,
                   predictor_dir=None, progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """One Phase 5 job: select, write ``selected.json``, train (``adapter/``, ``train_log.json``)."""
    from .io import read_json, read_parquet, write_json
    from .matrix import training_examples
    from .training import train_lora

    p5, seed = cfg["phase5"], int(cfg["seed"])
    plan = read_json(plan_path)["selection"]
    if not plan["run"]:
        raise ValueError(f"the plan {plan_path} does not run Phase 5: {plan['reason']}")
    cands = candidates(read_parquet(labeled_path), read_json(heldout_path))
    k = budget(p5, len(cands))
    chosen = select(cands, method, k, seed, predictor_dir)
    out_dir = Path(out_dir)
    oracle_ids = set(select(cands, "ORACLE", k, seed)["snapshot_id"])
    sel = {
        "method": method, "k": k, "format": p5["format"], "seed": seed, "n_candidates": int(len(cands)),
        "selected_ids": chosen["snapshot_id"].tolist(),
        "selection_scores": chosen["selection_score"].round(6).tolist(),
        "true_elp": chosen["ELP_net"].tolist(),
        "mean_true_elp": float(chosen["ELP_net"].mean()),
        "oracle_overlap": len(oracle_ids & set(chosen["snapshot_id"])) / k,
        "quadrants": chosen["quadrant"].value_counts().sort_index().to_dict(),
        "predictor": str(predictor_dir) if method == "PREDICTOR" else None,
    }  # fmt: skip
    write_json(sel, out_dir / "selected.json")
    log.info("%s: %d of %d candidates, mean true ELP_net %.3f, oracle overlap %.2f", method, k, len(cands),
             sel["mean_true_elp"], sel["oracle_overlap"])
    examples = training_examples(chosen, p5["format"])
    sc = cfg.get("student", {})
    meta = {"run_id": model_id(method), "method": method, "format": p5["format"], "budget": k}
    return train_lora(model_dir, examples, cfg["phase2"]["lora"], out_dir, progress=progress, meta=meta,
                      device=sc.get("device", "auto"), dtype=sc.get("dtype", "auto"))


def selection_summary(rollouts: pd.DataFrame, selected: dict[str, dict], confidence: float) -> dict[str, Any]:
    """Per method: success, reliability gain vs the base, retention drop (all with n and
    intervals), from Phase 3-style rollouts of the base (``base``) and ``select_{method}``."""
    from .evaluation import BASE_ID, newcombe_interval, overall_table, retention_table

    ov = overall_table(rollouts, confidence).set_index("model_id")
    ret = retention_table(rollouts, confidence).set_index("model_id")
    if BASE_ID not in ov.index:
        raise ValueError("the selection summary needs the base model's rollouts")
    overall = rollouts[rollouts["suite"] == "overall"]

    def success(mid: str) -> dict:
        r = ov.loc[mid]
        return {"p": float(r["success_rate"]), "n": int(r["n"]), "lo": float(r["success_lo"]),
                "hi": float(r["success_hi"])}

    kb, nb = int(overall.loc[overall["model_id"] == BASE_ID, "success"].sum()), int(ov.loc[BASE_ID, "n"])
    methods = {}
    for method, sel in selected.items():
        mid = model_id(method)
        if mid not in ov.index:
            raise ValueError(f"no overall-suite rollouts for {mid}")
        g = overall[overall["model_id"] == mid]
        d, lo, hi = newcombe_interval(int(g["success"].sum()), len(g), kb, nb, confidence)
        r = ret.loc[mid]
        methods[method] = {
            "model_id": mid,
            "selected_ids": sel["selected_ids"],
            "quadrants": sel.get("quadrants", {}),
            "mean_true_elp": sel["mean_true_elp"],
            "oracle_overlap": sel["oracle_overlap"],
            "success": success(mid),
            "reliability_gain": {"delta": d, "lo": lo, "hi": hi, "n_model": len(g), "n_base": nb},
            "retention": {"drop": float(r["drop"]), "lo": float(r["drop_lo"]), "hi": float(r["drop_hi"]),
                          "n": int(r["n"]), "n_base_solved_tasks": int(r["n_base_solved_tasks"])},
        }  # fmt: skip
    ks = {s["k"] for s in selected.values()}
    if len(ks) != 1:
        raise ValueError(f"selection methods used different budgets {sorted(ks)}")
    first = next(iter(selected.values()))
    return {
        "k": ks.pop(), "n_candidates": first["n_candidates"], "format": first["format"],
        "confidence": confidence, "base": {"success": success(BASE_ID)}, "methods": methods,
    }  # fmt: skip
