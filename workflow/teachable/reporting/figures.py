"""The report's figures (PNG under figures/), every number read from the phase outputs, and Phase
1's threshold plots (``threshold_plots``, from the labeled snapshots and their thresholds)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..constants import (
    BASE_MODEL_ID,
    BASELINE_RUNS,
    FORMATS,
    QUADRANTS,
    RUN_IDS,
)
from ..documents import CPT_CORRELATION, THRESHOLDS
from ..io import atomic_path
from ..schemas import LABELED, MICRO_RESULTS, PHASE3_TABLES
from .inputs import (
    DPI,
    FIGURES,
    fmt,
    gain_vs_base,
    in_quadrant,
    n_text,
    num,
    pareto_mask,
    read_input,
    read_report,
    read_selection,
    run_parts,
    short,
)
from .tables import selection_table

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------ figures
QUADRANT_COLORS = dict(zip(QUADRANTS, ("#55a868", "#dd8452", "#8c8c8c", "#4c72b0")))
FORMAT_MARKERS = {"demo": "o", "hint": "s", "contrast": "^"}
THRESHOLD_DPI = 110  # Phase 1's threshold plots (the report's figures: DPI)
METHOD_COLORS = {"RANDOM": "#8c8c8c", "ENTROPY": "#dd8452", "LEARNABILITY": "#8172b3", "PREDICTOR": "#4c72b0",
                 "ORACLE": "#55a868"}  # fmt: skip


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_not_run(title: str, reason: str):
    """The figure of a part of the study that did not run: its title and the reason, as text."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.axis("off")
    ax.set_title(title, fontsize=11)
    ax.text(0.5, 0.5, f"Not run: {reason}", ha="center", va="center", wrap=True, fontsize=10)
    return fig


def _save(fig, path, dpi: int = DPI, bbox_inches: str | None = "tight") -> Path:
    plt = _plt()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches=bbox_inches)
    plt.close(fig)
    return Path(path)


def _diverging_norm(values: Sequence[float]):
    from matplotlib.colors import TwoSlopeNorm

    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    m = float(np.max(np.abs(v))) if len(v) else 1.0
    m = m if m > 0 else 1.0
    return TwoSlopeNorm(vmin=-m, vcenter=0.0, vmax=m)


def plot_landscape(labeled: pd.DataFrame, thresholds: dict, source: str = "labeled snapshots"):
    plt = _plt()
    df = labeled[np.isfinite(labeled["U"].astype(float)) & np.isfinite(labeled["L_local"].astype(float))]
    if df.empty:
        raise ValueError(f"{source}: no snapshot with finite U and L_local to plot")
    for k in ("U_threshold", "L_threshold"):
        if num(thresholds.get(k)) is None:
            raise ValueError(f"quadrant thresholds lack a finite {k}")
    ut, lt = float(thresholds["U_threshold"]), float(thresholds["L_threshold"])
    fig, ax = plt.subplots(figsize=(7, 5.2))
    sc = ax.scatter(df["U"], df["L_local"], c=df["ELP_net"], cmap="RdBu_r", norm=_diverging_norm(df["ELP_net"]),
                    s=30, alpha=0.8, edgecolors="k", linewidths=0.3)  # fmt: skip
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label("ELP_net = max_m p_m - p_placebo (success prob.)")
    ax.axvline(ut, color="k", ls="--", lw=0.9)
    ax.axhline(lt, color="k", ls="--", lw=0.9)
    ax.margins(0.08)
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    sizes = df["quadrant"].value_counts() if "quadrant" in df.columns else pd.Series(dtype=int)
    spots = {QUADRANTS[0]: (x1, y1, "right", "top"), QUADRANTS[1]: (x1, y0, "right", "bottom"),
             QUADRANTS[2]: (x0, y0, "left", "bottom"), QUADRANTS[3]: (x0, y1, "left", "top")}  # fmt: skip
    for q, (x, y, ha, va) in spots.items():
        ax.text(x, y, f" {q} \n n={int(sizes.get(q, 0))} ", ha=ha, va=va, fontsize=8, color=QUADRANT_COLORS[q],
                fontweight="bold")  # fmt: skip
    ax.set_xlabel("U: student entropy over valid actions (nats)")
    ax.set_ylabel("L_local = p_force - p_policy (success prob.)")
    ax.set_title(f"Teachability landscape (n={len(df)} snapshots)\n"
                 f"dashed: thresholds U > {ut:.3f} nats, L_local > {lt:.3f}", fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig


def threshold_plots(df: pd.DataFrame, thr: dict, out_dir) -> None:
    """Phase 1's hist_U.png, hist_L.png and scatter_U_L.png under ``out_dir``, with the quadrant
    thresholds (``thr``, as in quadrant_thresholds.json) drawn."""
    plt = _plt()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(df)
    for col, thr_key, name, xlabel in (
        ("U", "U_threshold", "hist_U", "U: entropy over valid actions (nats)"),
        ("L_local", "L_threshold", "hist_L", "L_local = p_force - p_policy"),
    ):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.hist(df[col], bins=30, color="#4c72b0")
        ax.axvline(thr[thr_key], color="#c44e52", ls="--", label=f"threshold {thr[thr_key]:.3f}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("snapshots")
        ax.set_title(f"{col} (n={n})")
        ax.legend()
        fig.tight_layout()
        _save(fig, out_dir / f"{name}.png", dpi=THRESHOLD_DPI, bbox_inches=None)
    fig, ax = plt.subplots(figsize=(5, 4))
    for q, color in QUADRANT_COLORS.items():
        sub = df[df["quadrant"] == q]
        ax.scatter(sub["U"], sub["L_local"], s=12, alpha=0.7, color=color, label=f"{q} ({len(sub)})")
    ax.axvline(thr["U_threshold"], color="k", ls="--", lw=0.8)
    ax.axhline(thr["L_threshold"], color="k", ls="--", lw=0.8)
    ax.set_xlabel("U (nats)")
    ax.set_ylabel("L_local")
    ax.set_title(f"quadrants (n={n})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out_dir / "scatter_U_L.png", dpi=THRESHOLD_DPI, bbox_inches=None)


def _annotated_heatmap(ax, mat: pd.DataFrame, labels: pd.DataFrame, norm, title: str):
    import seaborn as sns

    sns.heatmap(mat.astype(float), ax=ax, cmap="RdBu_r", norm=norm, annot=labels.to_numpy(), fmt="",
                cbar=False, linewidths=0.5, linecolor="white", annot_kws={"fontsize": 8})  # fmt: skip
    ax.set_title(title, fontsize=10)


def _cell_label(r) -> str:
    return f"{float(r['delta_success']):+.3f}\n[{fmt(r['lo'], 2)}, {fmt(r['hi'], 2)}]\nn={int(r['n'])}"


def plot_in_quadrant_heatmap(transfer: pd.DataFrame, source: str = "transfer matrix"):
    plt = _plt()
    cells = in_quadrant(transfer)
    if cells.empty:
        raise ValueError(f"{source} has no quadrant x format run evaluated on its own quadrant")
    mat = pd.DataFrame(np.nan, index=list(QUADRANTS), columns=list(FORMATS))
    lab = pd.DataFrame("missing", index=mat.index, columns=mat.columns)
    for _, r in cells.iterrows():
        mat.loc[r["quadrant"], r["format"]] = r["delta_success"]
        lab.loc[r["quadrant"], r["format"]] = _cell_label(r)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    norm = _diverging_norm(mat.to_numpy().ravel())
    _annotated_heatmap(ax, mat, lab, norm,
                       f"In-quadrant Δ success vs base (run {{Q}}_{{format}} on held-out {{Q}} snapshots)\n"
                       f"cells: Δ [interval], n = rollouts ({n_text(cells['n'])}); {len(cells)} of 12 runs")  # fmt: skip
    ax.set_xlabel("supervision format")
    ax.set_ylabel("trained and evaluated on quadrant")
    from matplotlib.cm import ScalarMappable

    fig.colorbar(ScalarMappable(norm=norm, cmap="RdBu_r"), ax=ax, label="Δ success (model - base, prob.)")
    fig.tight_layout()
    return fig


def plot_transfer_matrix(transfer: pd.DataFrame, source: str = "transfer matrix"):
    """One panel per format (quadrant runs: trained-on x evaluated-on) and one panel for the
    baselines (B1_uniform, B2_all), one shared colour scale."""
    plt = _plt()
    from matplotlib.cm import ScalarMappable

    evals = [q for q in QUADRANTS if q in set(transfer["evaluated_on"])]
    evals += sorted(set(transfer["evaluated_on"]) - set(evals))
    if not evals:
        raise ValueError(f"{source} has no evaluated_on quadrant")
    panels = []
    for f in FORMATS:
        rows = transfer[transfer["model_id"].isin([f"{q}_{f}" for q in QUADRANTS])]
        panels.append((f"format: {f}", rows, "trained_on", [q for q in QUADRANTS]))
    base_rows = transfer[transfer["model_id"].isin(BASELINE_RUNS)]
    panels.append(("baselines (demo format)", base_rows, "model_id", list(BASELINE_RUNS)))
    panels = [p for p in panels if not p[1].empty]
    if not panels:
        raise ValueError(f"{source} has no row of a Phase 2 run")
    norm = _diverging_norm(pd.concat([p[1] for p in panels])["delta_success"])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1, 4.6), squeeze=False)
    for ax, (title, rows, key, index) in zip(axes[0], panels):
        mat = pd.DataFrame(np.nan, index=index, columns=evals)
        lab = pd.DataFrame("", index=index, columns=evals)
        for _, r in rows.iterrows():
            mat.loc[r[key], r["evaluated_on"]] = r["delta_success"]
            lab.loc[r[key], r["evaluated_on"]] = f"{float(r['delta_success']):+.2f}\nn={int(r['n'])}"
        mat.index = [short(i) for i in index]
        mat.columns = [short(c) for c in evals]
        _annotated_heatmap(ax, mat, lab, norm, f"{title} ({rows['model_id'].nunique()} runs)")
        ax.set_xlabel("evaluated on (held-out snapshots)")
        ax.set_ylabel("trained on" if key == "trained_on" else "run")
    fig.colorbar(ScalarMappable(norm=norm, cmap="RdBu_r"), ax=list(axes[0]), label="Δ success (model - base, prob.)",
                 shrink=0.8)  # fmt: skip
    fig.suptitle(f"Transfer matrix: Δ success vs base per (trained-on, evaluated-on) quadrant; "
                 f"n = rollouts per cell ({n_text(transfer['n'])})", fontsize=10)  # fmt: skip
    return fig


def frontier_points(overall: pd.DataFrame, retention: pd.DataFrame, models: Sequence[str] = RUN_IDS) -> pd.DataFrame:
    """One row per Phase 2 run with gain vs base and retention drop (Phase 3's paired intervals
    over tasks), and ``pareto``."""
    g = gain_vs_base(overall)
    df = g.merge(retention[["model_id", "drop", "drop_lo", "drop_hi", "n"]].rename(columns={"n": "n_retention"}),
                 on="model_id", how="inner")  # fmt: skip
    df = df[df["model_id"].isin(models)].reset_index(drop=True)
    df["pareto"] = pareto_mask(df["drop"], df["gain"])
    return df


def _err(v, lo, hi) -> list[list[float]]:
    v, lo, hi = (np.asarray(x, float) for x in (v, lo, hi))
    return [np.where(np.isfinite(lo), v - lo, 0.0).tolist(), np.where(np.isfinite(hi), hi - v, 0.0).tolist()]


def plot_reliability_retention(overall: pd.DataFrame, retention: pd.DataFrame, confidence: float = 0.95,
                               retention_threshold: float | None = None, source: str = "phase 3 results"):  # fmt: skip
    plt = _plt()
    pts = frontier_points(overall, retention)
    runs = set(pts["model_id"])
    pts = pts[np.isfinite(pts["gain"].astype(float)) & np.isfinite(pts["drop"].astype(float))]
    if pts.empty:  # a reported reason (no run trained, retention undefined) is shown; else an error
        reasons = retention.loc[retention["model_id"].isin(runs), "reason"].dropna().unique() \
            if "reason" in retention.columns else []  # fmt: skip
        if not runs or len(reasons):
            why = "; ".join(map(str, reasons)) or "no Phase 2 run was trained (phase2/plan.json)"
            return plot_not_run("Reliability vs retention (Phase 2 runs)", why)
        raise ValueError(f"{source}: no Phase 2 run with both a finite gain vs base and a retention drop")
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for _, r in pts.iterrows():
        q, f, kind = run_parts(r["model_id"])
        color = QUADRANT_COLORS.get(q, "k" if kind == "all" else "#8172b3")
        marker = FORMAT_MARKERS[f] if kind == "quadrant" else ("*" if kind == "all" else "D")
        ax.errorbar(r["drop"], r["gain"], xerr=np.array(_err([r["drop"]], [r["drop_lo"]], [r["drop_hi"]])),
                    yerr=np.array(_err([r["gain"]], [r["gain_lo"]], [r["gain_hi"]])), fmt=marker, color=color,
                    ms=8 if kind != "all" else 12, elinewidth=0.8, capsize=2, alpha=0.85)  # fmt: skip
        if r["pareto"]:  # colour + marker identify every run; only the frontier's are named
            ax.annotate(r["model_id"], (r["drop"], r["gain"]), xytext=(5, 5), textcoords="offset points", fontsize=7)
    front = pts[pts["pareto"]].sort_values("drop")
    ax.plot(front["drop"], front["gain"], "-", color="#c44e52", lw=1.5, label=f"Pareto frontier ({len(front)} runs)")
    ax.axhline(0, color="grey", lw=0.7)
    ax.axvline(0, color="grey", lw=0.7)
    if retention_threshold is not None:
        ax.axvline(retention_threshold, color="#c44e52", ls=":", lw=1, label=f"retention threshold {retention_threshold}")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=QUADRANT_COLORS[q], marker="o", ls="", label=short(q) + " " + q[3:]) for q in QUADRANTS]
    handles += [Line2D([], [], color="grey", marker=m, ls="", label=f) for f, m in FORMAT_MARKERS.items()]
    handles += [Line2D([], [], color="#8172b3", marker="D", ls="", label="B1_uniform"),
                Line2D([], [], color="k", marker="*", ls="", ms=10, label="B2_all")]  # fmt: skip
    h2, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + h2, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_xlabel("retention drop on base-solved tasks (base - model success, prob.; lower is better)")
    ax.set_ylabel("overall success gain vs base (prob.)")
    ax.set_title(f"Reliability vs retention, {len(pts)} Phase 2 runs\n"
                 f"gain: n = {n_text(pts['n'])} rollouts per model (base {n_text(pts['n_base'])}); "
                 f"retention: n = {n_text(pts['n_retention'])}; bars: {round(confidence * 100)}% intervals "
                 f"(paired bootstrap over tasks)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    return fig


def plot_selection_frontier(sel: dict, source: str = "selection summary"):
    if sel.get("skipped"):
        return plot_not_run(f"Selection at K={sel.get('k')}", sel["skipped"])
    plt = _plt()
    tab = selection_table(sel)
    tab = tab[tab["method"] != BASE_MODEL_ID]
    ok = np.isfinite(tab["gain"].astype(float)) & np.isfinite(tab["retention_drop"].astype(float))
    skipped = tab.loc[~ok, "method"].tolist()
    tab = tab[ok]
    if tab.empty:  # retention undefined for every method (its reason is in the summary): say so
        reasons = {(m.get("retention") or {}).get("reason") for m in sel["methods"].values()} - {None}
        if reasons:
            return plot_not_run(f"Selection at K={sel.get('k')}: gain vs retention", "; ".join(sorted(reasons)))
        raise ValueError(f"{source}: no selection method with both a reliability gain and a retention drop")
    fig, ax = plt.subplots(figsize=(7, 5))
    for _, r in tab.iterrows():
        color = METHOD_COLORS.get(r["method"], "#937860")
        ax.errorbar(r["retention_drop"], r["gain"],
                    xerr=np.array(_err([r["retention_drop"]], [r["drop_lo"]], [r["drop_hi"]])),
                    yerr=np.array(_err([r["gain"]], [r["gain_lo"]], [r["gain_hi"]])), fmt="o", color=color,
                    ms=9, capsize=3, elinewidth=1,
                    label=f"{r['method']}: set's fresh gain_net {fmt(r['value'])} (n={n_text([r['value_n']])}), "
                          f"{n_text([r['student_rollouts']])} rollouts, {n_text([r['teacher_calls']])} teacher calls")  # fmt: skip
    ax.axhline(0, color="grey", lw=0.7)
    ax.axvline(0, color="grey", lw=0.7)
    ax.set_xlabel("retention drop on base-solved tasks (prob.; lower is better)")
    ax.set_ylabel("reliability gain: success - base success (prob.)")
    b = sel["base"]["success"]
    title = (f"Selection at K={sel['k']}: gain vs retention per method\n"
             f"n = {n_text(tab['success_n'])} rollouts on {n_text(tab['n_tasks'])} tasks per model; retention "
             f"n = {n_text(tab['retention_n'])}; base success {fmt(b.get('p'))} (n={b.get('n')}); "
             f"bars: bootstrap over tasks")  # fmt: skip
    if skipped:
        title += f"; not plotted (missing numbers): {', '.join(skipped)}"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    ax.margins(0.25)
    fig.tight_layout()
    return fig


def plot_cpt_vs_micro(micro: pd.DataFrame, corr: dict, source: str = "micro-training results"):
    plt = _plt()
    df = micro[np.isfinite(micro["ELP_net"].astype(float)) & np.isfinite(micro["delta"].astype(float))]
    if df.empty:
        raise ValueError(f"{source}: no snapshot with finite ELP_net and delta to plot")
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for q in [*QUADRANTS, *sorted(set(df["quadrant"]) - set(QUADRANTS))]:
        sub = df[df["quadrant"] == q]
        if len(sub):  # both axes are discrete (multiples of 1/n rollouts): marker area = snapshots at a point
            pts = sub.groupby(["ELP_net", "delta"]).size().reset_index(name="count")
            ax.scatter(pts["ELP_net"], pts["delta"], s=30 * pts["count"], alpha=0.55,
                       color=QUADRANT_COLORS.get(q, "#937860"), edgecolors="k", linewidths=0.3,
                       label=f"{q} (n={len(sub)})")  # fmt: skip
    ax.axhline(0, color="grey", lw=0.7)
    ax.axvline(0, color="grey", lw=0.7)
    ci = corr.get("rho_ci") or [None, None]
    conf = num(corr.get("confidence"))
    rho_txt = (f"Spearman ρ = {fmt(corr.get('rho'))} "
               f"[{round(conf * 100) if conf else '?'}% CI {fmt(ci[0])}, {fmt(ci[1])}], "
               f"p = {fmt(corr.get('p_value'), 4)} (one-sided permutation), n = {corr.get('n')}")  # fmt: skip
    if num(corr.get("rho")) is None and corr.get("reason"):
        rho_txt += f"\n({corr['reason']})"
    ax.set_title(f"CPT vs micro-training (n={len(df)} snapshots; marker area = snapshots at a point)\n{rho_txt}",
                 fontsize=9)
    ax.set_xlabel("ELP_net (CPT: best patch - placebo, success prob.)")
    ax.set_ylabel("micro-training Δ = success after - before (prob.)")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", ms=6, alpha=0.7, mec="k", mew=0.3, color=c.get_facecolor()[0],
                      label=c.get_label()) for c in ax.collections]  # fmt: skip
    ax.legend(handles=handles, fontsize=7)
    fig.tight_layout()
    return fig


def figures_from_files(*, labeled, thresholds, micro, correlation, transfer, overall, retention, selection, out_dir,
                       confidence: float = 0.95, retention_threshold: float | None = None) -> list[Path]:  # fmt: skip
    """Reads every input (errors name the file) and writes ``FIGURES`` under ``out_dir``."""
    lab = read_input(labeled, LABELED, "labeled snapshots")
    thr = read_report(thresholds, THRESHOLDS)
    mic = read_input(micro, MICRO_RESULTS, "micro-training results")
    corr = read_report(correlation, CPT_CORRELATION)
    tr = read_input(transfer, PHASE3_TABLES["transfer"], "transfer matrix")
    ov = read_input(overall, PHASE3_TABLES["overall"], "overall task results")
    ret = read_input(retention, PHASE3_TABLES["retention"], "retention results")
    sel = read_selection(selection)
    out = Path(out_dir)
    figs = {
        "landscape.png": lambda: plot_landscape(lab, thr, f"labeled snapshots {labeled}"),
        "in_quadrant_heatmap.png": lambda: plot_in_quadrant_heatmap(tr, f"transfer matrix {transfer}"),
        "transfer_matrix.png": lambda: plot_transfer_matrix(tr, f"transfer matrix {transfer}"),
        "reliability_retention_frontier.png": lambda: plot_reliability_retention(
            ov, ret, confidence, retention_threshold, f"phase 3 results {overall}, {retention}"),
        "selection_frontier.png": lambda: plot_selection_frontier(sel, f"selection summary {selection}"),
        "cpt_vs_microtraining.png": lambda: plot_cpt_vs_micro(mic, corr, f"micro-training results {micro}"),
    }  # fmt: skip
    assert set(figs) == set(FIGURES)
    return [_save(make(), out / name) for name, make in figs.items()]
