"""The real DAG on the micro config (tests/micro.yaml) in a temp dir: checks of the outputs'
invariants and of Snakemake's re-run behaviour, on the one micro run the session shares
(``conftest.micro_labels``: phases 0-1; ``conftest.micro_run``: the whole DAG, same directory).

Unit tier (``make test``): the phase 0-1 run and its invariants, and the checks of the DAG as it is
built. Integration tier (``make test-all``, marked ``integration``): everything past phase 1,
re-run planning on the finished run, kill and resume, shard counts, the bench with an HTTP
student."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dag import MICRO, PHASE01, ROOT, planned_jobs, smk, smk_cmd, smk_env
from teachable.selection import METHODS, oracle_gains

integration = pytest.mark.integration


def test_outputs_exist(micro_labels):
    run = micro_labels
    for f in ["phase0/rollouts.parquet", "phase0/failure_snapshots.parquet", "phase0/expert_snapshots.parquet",
              "phase1/labeled_snapshots.parquet", "phase1/labeled_snapshots.jsonl",
              "phase1/quadrant_thresholds.json", "phase1/threshold_plots/hist_U.png",
              "phase1/threshold_plots/hist_L.png", "phase1/threshold_plots/scatter_U_L.png",
              "student/model/config.json"]:
        assert (run / f).stat().st_size > 0, f
    assert (run / "logs/label_shard/0.log").exists()
    assert (run / "benchmarks/label_shard/0.tsv").exists()


def test_experiment_a_snapshots_come_only_from_failed_episodes(micro_labels):
    run = micro_labels
    r = pd.read_parquet(run / "phase0/rollouts.parquet")
    fa = pd.read_parquet(run / "phase0/failure_snapshots.parquet")
    assert len(fa) > 0, "micro run mined no failure snapshots"
    ok = r.drop_duplicates("episode_id").set_index("episode_id")["episode_success"]
    assert not ok[fa["episode_id"]].any()
    for _, s in fa.iterrows():
        ep = r[r["episode_id"] == s["episode_id"]].sort_values("step_idx")
        assert list(s["actions"]) == ep["action"].tolist()[: s["step_idx"]]
        assert s["student_action"] == ep["action"].iloc[s["step_idx"]] != s["expert_action"]  # a mistake
        assert s["steps_left"] == 40 - s["step_idx"]
    mining = json.loads((run / "phase0/mining_summary.json").read_text())
    assert mining["A"]["snapshots"] == len(fa) and mining["A"]["failed_episodes"] >= fa["episode_id"].nunique()


def test_labeled_snapshot_invariants(micro_labels):
    run = micro_labels
    df = pd.read_parquet(run / "phase1/labeled_snapshots.parquet")
    assert len(df) > 0
    required = ("snapshot_id task_id env_id seed step_idx valid_actions student_action suggested_action "
                "diagnosis U p_policy p_force p_expert L_local L_upper p_base p_placebo_demo p_placebo_hint "
                "p_placebo_contrast p_demo p_hint p_contrast ELP_net ELP_net_naive route_net "
                "quadrant p_expert_errors").split()
    assert not set(required) - set(df.columns)
    probs = [c[2:] for c in required if c.startswith("p_") and c != "p_expert_errors"]  # (a count)
    iv = pd.read_parquet(run / "phase1/label_intervals.parquet").set_index("snapshot_id").loc[df["snapshot_id"]]
    for p in probs:
        assert f"p_{p}_n" in df.columns and {f"p_{p}_lo", f"p_{p}_hi"} <= set(iv.columns)
        v, lo, hi = df[f"p_{p}"].to_numpy(), iv[f"p_{p}_lo"].to_numpy(), iv[f"p_{p}_hi"].to_numpy()
        assert ((v >= 0) & (v <= 1)).all() and (lo <= v + 1e-12).all() and (v <= hi + 1e-12).all()
        assert (df[f"p_{p}_n"] > 0).all()
    from teachable.envs.babyai import mentioned_actions

    for _, r in df.iterrows():
        assert r["suggested_action"] in list(r["valid_actions"])
        assert not mentioned_actions(r["diagnosis"])  # names or paraphrases no action
        # a percentile interval of the cross-fitted max (a nonlinear statistic of a few rollouts
        # per half) need not contain its point estimate; it is an interval within [-1, 1]
        assert -1 <= iv.loc[r["snapshot_id"], "ELP_net_lo"] <= iv.loc[r["snapshot_id"], "ELP_net_hi"] <= 1
    assert np.allclose(df["L_local"], df["p_force"] - df["p_policy"])
    assert np.allclose(df["L_upper"], df["p_expert"] - df["p_policy"])
    gains = df[["p_demo", "p_hint", "p_contrast"]].to_numpy() - df[
        ["p_placebo_demo", "p_placebo_hint", "p_placebo_contrast"]].to_numpy()
    assert np.allclose(df["ELP_net_naive"], gains.max(axis=1))
    assert (df["ELP_net"] <= df["ELP_net_naive"] + 1.0).all() and df["ELP_net"].between(-1, 1).all()
    audit = json.loads((run / "phase1/hint_audit.json").read_text())
    assert audit["n"] == len(df) and audit["diagnoses_naming_action"] == 0
    assert (df["U"] >= 0).all() and (df["U"] <= np.log(df["valid_actions"].map(len)) + 1e-9).all()
    thr = json.loads((run / "phase1/quadrant_thresholds.json").read_text())
    hi_u, hi_l = df["U"] > thr["U_threshold"], df["L_local"] > thr["L_threshold"]
    expect = np.where(hi_u & hi_l, "Q1_highU_highL", np.where(hi_u, "Q2_highU_lowL",
                      np.where(hi_l, "Q4_lowU_highL", "Q3_lowU_lowL")))
    assert (df["quadrant"] == expect).all()
    assert sum(thr["sizes"].values()) == len(df)
    jl = pd.read_json(run / "phase1/labeled_snapshots.jsonl", lines=True)
    assert len(jl) == len(df)


RUN_IDS = [f"{q}_{f}" for q in ("Q1_highU_highL", "Q2_highU_lowL", "Q3_lowU_lowL", "Q4_lowU_highL")
           for f in ("demo", "hint", "contrast")] + ["B1_uniform", "B2_all", "B3_traces"]


@integration
def test_cpt_rho_is_the_spearman_of_the_two_columns(micro_run):
    run = micro_run
    from scipy.stats import spearmanr

    res = pd.read_parquet(run / "phase1b/micro_training_results.parquet")
    rep = json.loads((run / "phase1b/cpt_correlation.json").read_text())
    assert len(res) == rep["n"] > 0
    assert np.allclose(res["delta"], res["after"] - res["before"])
    rho = spearmanr(res["ELP_net"], res["delta"]).statistic
    if np.isnan(rho):
        assert rep["rho"] is None and not rep["pass"]
    else:
        assert rep["rho"] == pytest.approx(rho)
        assert rep["rho_ci"][0] <= rho + 1e-9 and rho - 1e-9 <= rep["rho_ci"][1]
        assert 0 < rep["p_value"] <= 1
    assert json.loads((run / "phase1b/gate.json").read_text())["pass"] == rep["pass"]


@integration
def test_trained_adapters_load_with_equal_compute_and_no_heldout_task(micro_run):
    run = micro_run
    from peft import PeftConfig

    plan = json.loads((run / "phase2/plan.json").read_text())
    held = json.loads((run / "phase2/heldout.json").read_text())
    summary = json.loads((run / "phase2/training_summary.json").read_text())
    runs = plan["trained_runs"]
    assert sorted(summary["runs"]) == sorted(runs) and summary["equal_budgets"] and not summary["heldout_leaks"]
    assert set(runs) | set(plan["skipped_runs"]) == set(RUN_IDS) and summary["skipped_runs"] == plan["skipped_runs"]
    lab = pd.read_parquet(run / "phase1/labeled_snapshots.parquet")
    h = lab["snapshot_id"].isin(held["snapshot_ids"])
    assert not set(lab.loc[h, "task_id"]) & set(lab.loc[~h, "task_id"])  # no task on both sides
    steps = set()
    for rid in runs:
        PeftConfig.from_pretrained(str(run / "phase2" / rid / "adapter"))
        ts = json.loads((run / "phase2" / rid / "train_set.json").read_text())
        assert not set(ts["snapshot_ids"]) & set(held["snapshot_ids"])
        assert not set(ts["task_ids"]) & set(held["task_ids"])
        log = json.loads((run / "phase2" / rid / "train_log.json").read_text())
        assert log["loss_curve"] and log["tokens_trained"] > 0
        assert log["optimizer_steps"] == plan["runs"][rid]["optimizer_steps"]
        # the anchor (phase2.anchor) and what each run logs: its targets' marginal, its drift at fixed states
        assert log["anchor_examples"] == plan["runs"][rid]["anchor_examples"] == len(ts.get("anchor_step_ids", []))
        assert sum(log["target_marginal"].values()) == log["examples"] and log["drift"]["n_states"] > 0
        if rid not in ("B2_all", "B3_traces"):
            steps.add((log["examples"], log["optimizer_steps"]))
    assert len(steps) == 1  # equal examples and optimizer steps for every budgeted run
    # B3_traces: the student's own successful phase 0 episodes, none of a held-out task
    assert "B3_traces" in runs, plan["skipped_runs"].get("B3_traces")
    ts = json.loads((run / "phase2/B3_traces/train_set.json").read_text())
    roll = pd.read_parquet(run / "phase0/rollouts.parquet")
    eps = roll[roll["episode_id"].isin(ts["episode_ids"])]
    assert ts["episode_ids"] and eps["episode_success"].all() and (eps["experiment"] == "A").all()
    assert not set(eps["task_id"]) & set(held["task_ids"])
    from teachable.envs.babyai import BabyAITextEnv
    from teachable.policies.hf import HFPolicy

    pol = HFPolicy(run / "student/model", adapter_dir=run / "phase2/B2_all/adapter", system_prompt=BabyAITextEnv.SYSTEM_PROMPT)
    assert pol.adapter_dir is not None


@integration
def test_phase3_tables_and_eval_seed_disjointness(micro_run):
    run = micro_run
    cols = {
        "overall_task_results": ["model_id", "n", "success_rate", "success_lo", "success_hi", "mean_return"],
        "per_quadrant_results": ["model_id", "quadrant", "n", "success_rate", "lo", "hi"],
        "transfer_matrix": ["trained_on", "evaluated_on", "model_id", "delta_success", "lo", "hi", "n"],
        "retention_results": ["model_id", "n_base_solved_tasks", "base_success", "model_success", "drop"],
        "stuckness_results": ["model_id", "repeat_rate", "loop_rate", "wasted_steps", "invalid_rate"],
    }
    for name, want in cols.items():
        df = pd.read_csv(run / f"phase3/{name}.csv")
        assert df.columns[0] == want[0] and set(want) <= set(df.columns), (name, list(df.columns))
    overall = pd.read_csv(run / "phase3/overall_task_results.csv")
    trained = json.loads((run / "phase2/plan.json").read_text())["trained_runs"]
    assert set(overall["model_id"]) == {"base", *trained}
    assert {"n_tasks", "n_rollouts"} <= set(overall.columns)
    rows = pd.read_parquet(run / "phase3/rollouts.parquet")
    train = set(range(0, 5000))
    assert not set(rows.loc[rows["suite"] == "overall", "seed"]) & train
    snaps = rows[rows["suite"] == "snapshot"]["snapshot_id"].unique()
    assert set(snaps) <= set(json.loads((run / "phase2/heldout.json").read_text())["snapshot_ids"])
    bench = json.loads((run / "phase3/models/base/benchmark.json").read_text())
    assert 0 <= bench["pass_rate"] <= 1 and bench["n"] > 0
    for r in ("B2_all", "B3_traces"):  # the baselines compared with the base
        assert r in (run / f"phase3/compare/{r}_vs_base.md").read_text()
    fam = pd.read_csv(run / "phase3/family_metrics.csv")  # BabyAI has no achievements: no rows
    assert list(fam.columns) == ["model_id", "metric", "value", "lo", "hi", "n", "n_tasks"] and fam.empty


@integration
def test_predictor_outputs_and_grouped_folds(micro_run):
    run = micro_run
    res = json.loads((run / "phase4/training_result.json").read_text())
    assert {"U", "L_local", "ELP_net", "quadrant", "route_net"} <= set(res["targets"])
    assert "uncertainty" not in res["targets"]["U"]["inputs"]  # U is not predicted from itself
    pred_dir = run / "phase4/predictor"
    assert (pred_dir / "feature_config.json").is_file() and (pred_dir / "folds.json").is_file()
    oof = pd.read_parquet(run / "phase4/oof_predictions.parquet")
    assert oof.groupby("task_id")["fold"].nunique().max() == 1  # no task in two folds


@integration
def test_selection_sets_and_summary(micro_run):
    run = micro_run
    lab = pd.read_parquet(run / "phase1/labeled_snapshots.parquet")
    heldout = set(json.loads((run / "phase2/heldout.json").read_text())["snapshot_ids"])
    cands = lab[~lab["snapshot_id"].isin(heldout)]
    summary = json.loads((run / "phase5/selection_summary.json").read_text())
    k = summary["k"]
    sets = {}
    for m in METHODS:
        sel = json.loads((run / f"phase5/selection/{m}/selected.json").read_text())
        sets[m] = sel["selected_ids"]
        assert len(sel["selected_ids"]) == k and not set(sel["selected_ids"]) & heldout
        log = json.loads((run / f"phase5/selection/{m}/train_log.json").read_text())
        assert log["examples"] == k
        got = summary["methods"][m]
        assert got["selected_ids"] == sel["selected_ids"]
        assert got["reliability_gain"]["lo"] <= got["reliability_gain"]["delta"] <= got["reliability_gain"]["hi"]
        # the set's value on fresh rollouts: phase5.value_rollouts per condition at each pick
        assert got["value"]["n"] == k * sel["value_rollouts"]["n_per_snapshot"] and got["cost"] == sel["cost"]
    # ORACLE's set holds the top-K even-half gain_net of phase5.format (ties may swap equal values)
    even = pd.Series(oracle_gains(cands, summary["format"])[0], index=cands["snapshot_id"])
    assert np.allclose(np.sort(even.loc[sets["ORACLE"]])[::-1], np.sort(even.to_numpy())[::-1][:k])
    # equal cost: LEARNABILITY_EQ rolled out as many student rollouts as ORACLE's labels hold
    cost = {m: summary["methods"][m]["cost"] for m in METHODS}
    assert cost["LEARNABILITY_EQ"]["student_rollouts"] == cost["ORACLE"]["student_rollouts"] > 0
    assert cost["RANDOM"]["student_rollouts"] == 0 and cost["ORACLE"]["teacher_calls"] >= len(cands)
    ent = cands.set_index("snapshot_id").loc[sets["ENTROPY"], "U"]
    assert ent.min() >= np.sort(cands["U"].to_numpy())[::-1][k - 1] - 1e-12


@integration
def test_figures_tables_and_summary_numbers(micro_run):
    run = micro_run
    for name in ("landscape", "in_quadrant_heatmap", "transfer_matrix", "reliability_retention_frontier",
                 "selection_frontier", "cpt_vs_microtraining"):
        data = (run / f"figures/{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
    for t in ("quadrant_summary", "best_supervision", "main_results", "predictor_metrics", "selection_summary"):
        assert len(pd.read_csv(run / f"tables/{t}.csv")) > 0, t
        assert (run / f"tables/{t}.md").read_text().strip(), t
    checks = {c["id"]: c for c in json.loads((run / "summary.json").read_text())["checks"]}
    corr = json.loads((run / "phase1b/cpt_correlation.json").read_text())
    assert checks["cpt_rho"]["values"]["rho"] == corr["rho"]
    trained = json.loads((run / "phase2/plan.json").read_text())["trained_runs"]
    ret = pd.read_csv(run / "phase3/retention_results.csv").set_index("model_id").loc[trained]
    if ret["drop"].notna().all():
        assert checks["retention_drop"]["values"]["max_drop"] == pytest.approx(ret["drop"].max())
    md = (run / "summary.md").read_text()
    assert "ρ" in md or "rho" in md
    # the positive control comes first; where it failed, the trained-model checks are not interpretable
    control = json.loads((run / "summary.json").read_text())["control"]
    assert control["id"] == "positive_control" and md.splitlines()[2].startswith(
        "**Positive control held**" if control["held"] else "**⚠ Positive control failed**")
    assert any(c.get("not_interpretable") for c in checks.values()) == (control["held"] is False)


def test_a_second_phase01_run_does_nothing(micro_labels):
    out = smk(micro_labels.parent, "-n", *PHASE01).stdout
    assert "Nothing to be done" in out, out[-2000:]


@integration
def test_second_run_does_nothing(micro_run):
    run = micro_run
    out = smk(run.parent, "-n").stdout
    assert "Nothing to be done" in out, out[-2000:]


def _planned(run, text: str) -> set[str]:
    override = run.parent / "override.yaml"
    override.write_text(text)
    return set(planned_jobs(smk(run.parent, "-n", "--configfile", str(MICRO), str(override)).stdout))


@integration
def test_changing_a_phase1_setting_reruns_only_phase1(micro_run):
    run = micro_run
    jobs = _planned(run, "phase1:\n  quadrants:\n    mode: manual\n    u_threshold: 0.5\n    l_threshold: 0.0\n")
    assert jobs and "merge_labels" in jobs and not {"student_init", "rollouts", "mine_snapshots", "label_shard"} & jobs, jobs
    jobs = _planned(run, "phase1:\n  n_rollouts: 2\n")
    assert {"label_shard", "merge_labels"} <= jobs and not {"student_init", "rollouts", "mine_snapshots"} & jobs, jobs
    jobs = _planned(run, "phase3:\n  rollouts_per_task: 3\n")
    assert "eval_model" in jobs and not {"label_shard", "train_run", "microtrain"} & jobs, jobs


SUMMARY_RULES = {"label_report", "micro_merge", "cpt_gate", "predictor_metrics", "benchmark_model",
                 "benchmark_selection", "eval_summary", "compare_run", "selection_summary", "figures", "tables",
                 "summary", "all"}  # fmt: skip


@integration
@pytest.mark.parametrize("setting", [
    "phase1:\n  confidence: 0.9\n", "phase1:\n  n_bootstrap: 200\n", "phase1b:\n  alpha: 0.1\n",
    "phase1b:\n  bootstrap_resamples: 300\n", "phase3:\n  confidence: 0.9\n", "phase3:\n  alpha: 0.1\n",
    "phase3:\n  n_bootstrap: 150\n", "phase4:\n  n_bootstrap: 200\n", "phase4:\n  top_k: 2\n",
    "report:\n  retention_threshold: 0.1\n",
])  # fmt: skip
def test_a_statistic_only_setting_reruns_only_summaries(micro_run, setting):
    run = micro_run
    jobs = _planned(run, setting)
    assert jobs and jobs <= SUMMARY_RULES, (setting, jobs - SUMMARY_RULES)


def test_lint_is_clean():
    p = smk(ROOT, "--lint", check=False)
    assert "Congratulations" in p.stdout + p.stderr, (p.stdout + p.stderr)[-3000:]


def test_rule_files_are_snakefmt_formatted():
    exe = Path(sys.executable).parent / "snakefmt"
    p = subprocess.run([str(exe), "--check", "Snakefile", "workflow/rules"], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_pilot_dry_run_shows_the_dag(tmp_path):
    p = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"),
                        "--directory", str(tmp_path), "--configfile", str(ROOT / "config/pilot.yaml")],
                       capture_output=True, text=True, env=smk_env())  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    jobs = planned_jobs(p.stdout)
    assert jobs["label_shard"] == 2 and jobs["student_init"] == 1 and jobs["merge_labels"] == 1
    # the training plan is a checkpoint: which runs train is known once the labels exist
    assert jobs["plan_training"] == 1 and "checkpoint" in p.stdout


def test_bad_config_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("phase1:\n  n_rollouts: -1\n")
    p = smk(tmp_path, "-n", "--configfile", str(MICRO), str(bad), check=False)
    assert p.returncode != 0 and "n_rollouts" in p.stdout + p.stderr


def test_missing_model_dir_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"student:\n  model_path: {tmp_path}/no_such_model\n")
    p = smk(tmp_path, "-n", "--configfile", str(MICRO), str(bad), check=False)
    out = p.stdout + p.stderr
    assert p.returncode != 0 and "no_such_model" in out and "student.model_path" in out


def test_unknown_env_id_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("env:\n  id: BabyAI-GoToNowhere-v0\n")
    p = smk(tmp_path, "-n", "--configfile", str(MICRO), str(bad), check=False)
    out = p.stdout + p.stderr
    assert p.returncode != 0 and "BabyAI-GoToNowhere-v0" in out and "env.id" in out


# ------------------------------------------------------------------------------------ kill and resume
def _run_until_killed(workdir: Path, started: str, *targets: str, timeout_s: float = 600) -> None:
    """Runs the micro DAG (up to ``targets``) and SIGKILLs the whole process group (Snakemake and
    its jobs) as soon as a job of rule ``started`` has begun (its log exists)."""
    import signal
    import time

    proc = subprocess.Popen(smk_cmd(workdir, "--cores", "2", *targets), env=smk_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    t0 = time.time()
    try:
        while not any((workdir / "results/logs" / started).glob("*.log")):
            if proc.poll() is not None:
                pytest.fail(f"the run ended (code {proc.returncode}) before rule {started} started")
            if time.time() - t0 > timeout_s:
                pytest.fail(f"rule {started} did not start within {timeout_s} s")
            time.sleep(0.2)
        time.sleep(1.0)  # mid-job
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _float_arrays(col: pd.Series) -> list[np.ndarray] | None:
    """The column's values as float arrays where each is a list/array of floats (e.g. the first
    step's probabilities ``pi_<c>``, or the cells' outcomes), else None."""
    try:
        out = [np.asarray(list(v) if np.ndim(v) else v, dtype=float) for v in col]
    except (TypeError, ValueError):
        return None
    return out if all(v.ndim >= 1 for v in out) else None


def _same_frames(a: pd.DataFrame, b: pd.DataFrame, key: list[str]) -> None:
    """The same rows and columns; floats (also inside lists: a forward pass's probabilities) equal
    up to 1e-6, as a batched matmul's last bits may differ between two processes."""
    a = a.sort_values(key).reset_index(drop=True)
    b = b.sort_values(key).reset_index(drop=True)
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for c in a.columns:
        x, y = a[c], b[c]
        if pd.api.types.is_float_dtype(x):
            assert np.allclose(x.to_numpy(float), y.to_numpy(float), atol=1e-6, equal_nan=True), c
        elif x.dtype == object and (fx := _float_arrays(x)) is not None and (fy := _float_arrays(y)) is not None:
            assert all(u.shape == v.shape and np.allclose(u, v, atol=1e-6, equal_nan=True) for u, v in zip(fx, fy)), c
        else:
            assert x.map(repr).tolist() == y.map(repr).tolist(), c


# what the kill-and-resume run goes up to: the phase 3 rollouts of the matrix's adapters (the
# later phases only read finished files; they have their own tests)
RESUMED_TARGET = "results/phase3/rollouts.parquet"


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, micro_labels):
    """The micro DAG killed (SIGKILL of everything) during phase 1 and again during phase 2, each
    time resumed with Snakemake's `--unlock` and the same command, up to ``RESUMED_TARGET``. It
    starts from the micro run's student and phase 0 (copied with their times: the kills fall
    later)."""
    import shutil

    wd = tmp_path_factory.mktemp("killed")
    for part in ("student", "phase0"):
        shutil.copytree(micro_labels / part, wd / "results" / part)
    _run_until_killed(wd, "label_shard", RESUMED_TARGET)
    smk(wd, "--unlock")
    _run_until_killed(wd, "train_run", RESUMED_TARGET)
    smk(wd, "--unlock")
    out = smk(wd, "--cores", "2", RESUMED_TARGET)
    return wd / "results", out.stdout + out.stderr


@integration
def test_killed_twice_and_resumed_equals_an_uninterrupted_run(micro_run, resumed):
    run = micro_run
    results, log = resumed
    _same_frames(pd.read_parquet(run / "phase1/labeled_snapshots.parquet"),
                 pd.read_parquet(results / "phase1/labeled_snapshots.parquet"), ["snapshot_id"])  # fmt: skip
    plan = json.loads((run / "phase2/plan.json").read_text())
    assert plan == json.loads((results / "phase2/plan.json").read_text())
    for rid in plan["trained_runs"]:
        a, b = (json.loads((r / "phase2" / rid / "train_log.json").read_text()) for r in (run, results))
        for k in ("examples", "epochs", "optimizer_steps", "tokens_trained"):
            assert a[k] == b[k], (rid, k)
        assert np.allclose([v for _, v in a["loss_curve"]], [v for _, v in b["loss_curve"]], atol=1e-5), rid
    _same_frames(pd.read_parquet(run / "phase3/rollouts.parquet"), pd.read_parquet(results / "phase3/rollouts.parquet"),
                 ["model_id", "suite", "task_id", "snapshot_id", "rollout_idx"])  # fmt: skip


@integration
def test_labels_do_not_depend_on_the_number_of_shards(micro_labels, tmp_path):
    """phase1.n_shards 3 labels the same snapshots with the same outcomes as the run's 2 (one shard and
    other orders: the unit tier's ``test_labels_do_not_depend_on_shards_or_order``)."""
    import shutil

    run = micro_labels

    ref = pd.read_parquet(run / "phase1/labeled_snapshots.parquet")
    for n in (3,):
        wd = tmp_path / f"shards{n}"
        for part in ("student", "phase0"):  # what phase 1 reads, copied with its times
            shutil.copytree(run / part, wd / "results" / part)
        cfg = wd / "shards.yaml"
        cfg.write_text(f"phase1:\n  n_shards: {n}\n")
        smk(wd, "--configfile", str(MICRO), str(cfg), "--cores", "2", "--until", "merge_labels")
        got = pd.read_parquet(wd / "results/phase1/labeled_snapshots.parquet")
        _same_frames(ref, got, ["snapshot_id"])


# ------------------------------------------------------------------------------------ bench
BENCH_TARGET = "results/bench/base/bench_results.json"


def _openai_student(workdir: Path, base_url: str) -> Path:
    """A config of an API student (student.backend: openai) on a tiny bench."""
    f = workdir / "openai.yaml"
    f.write_text(f"student:\n  backend: openai\n  openai:\n    base_url: {base_url}\n    model: tiny-student\n"
                 f"    api_key_env: TEACHABLE_TEST_KEY_UNSET\n    concurrency: 2\n    cache_dir: {workdir / 'cache'}\n"
                 "env:\n  max_steps: 6\nbench:\n  tasks: 2\n  rollouts_per_task: 1\n")  # fmt: skip
    return f


@integration
def test_the_bench_dag_takes_an_openai_student_and_the_study_refuses_it(tmp_path):
    cfg = _openai_student(tmp_path, "http://127.0.0.1:9/v1")
    micro = str(MICRO)
    p = smk(tmp_path, "-n", "-p", "--configfile", micro, str(cfg), "--", BENCH_TARGET)
    assert planned_jobs(p.stdout) == {"bench_rollouts": 1, "bench": 1}, p.stdout[-2000:]
    assert "student_init" not in p.stdout and "--model " not in p.stdout  # no local model for an API student
    refused = {  # target -> what the refusal says
        "all": "cannot train, and the study's phases 1B (micro-training), 2 (training) and 5",  # check_trainable's
        "results/phase1/labeled_snapshots.parquet": "cannot train",  # phase 1 reads the local model directory
        "results/bench/B3_traces/bench_results.json": "Phase 2 run's LoRA adapter, which needs student.backend: hf",
    }  # fmt: skip
    for target, says in refused.items():
        p = smk(tmp_path, "-n", "--configfile", micro, str(cfg), "--", target, check=False)
        out = p.stdout + p.stderr
        assert p.returncode != 0 and "config key student.backend='openai'" in out and says in out, (target, out[-2000:])


@pytest.fixture(scope="module")
def openai_bench(tmp_path_factory, tiny_student):
    """Rule bench run for real (not a dry-run) with an API student: the local OpenAI-compatible
    server (tests/openai_server.py) answers with the tiny student's own generations."""
    from openai_server import FakeOpenAIServer, StudentResponder

    from teachable.envs.registry import system_prompt
    from teachable.policies.hf import HFPolicy

    wd = tmp_path_factory.mktemp("bench_openai")
    env = "BabyAI-GoToLocal-v0"
    hf = HFPolicy(tiny_student, device="cpu", system_prompt=system_prompt(env))
    with FakeOpenAIServer(responder=StudentResponder(hf, system_prompt(env))) as server:
        cfg = _openai_student(wd, server.base_url)
        smk(wd, "--configfile", str(MICRO), str(cfg), "--cores", "1", "--", BENCH_TARGET)
        n_http = len(server.requests)
    return wd, cfg, n_http


@integration
def test_rule_bench_benches_an_openai_student(openai_bench):
    wd, cfg, n_http = openai_bench
    assert "Nothing to be done" in smk(wd, "-n", "--configfile", str(MICRO), str(cfg), "--",
                                       BENCH_TARGET).stdout  # fmt: skip
    res = json.loads((wd / BENCH_TARGET).read_text())
    eps = pd.read_parquet(wd / "results/bench/base/bench_episodes.parquet")
    u = res["usage"]
    assert res["suite"] == "bench" and res["backend"] == "openai" and res["model_dir"] is None
    assert u["backend"] == "openai" and u["counted"] and u["model"] == "tiny-student"
    assert u["requests"] == n_http == int(eps["steps"].sum()) > 0 and u["prompt_tokens"] > 0
    assert len(eps) == res["metrics"]["success_rate"]["n"] == 2 and res["by_archetype"]["go to"]["n_rollouts"] == 2
    assert not (wd / "results/student").exists()  # no local student was built


@integration
@pytest.mark.parametrize("setting", ["phase3:\n  confidence: 0.9\n", "phase3:\n  n_bootstrap: 150\n"])
def test_a_bench_statistic_reruns_only_the_bench_statistics(openai_bench, setting):
    wd, cfg, _ = openai_bench
    micro = str(MICRO)
    override = wd / "stat.yaml"
    override.write_text(setting)
    p = smk(wd, "-n", "--configfile", micro, str(cfg), str(override), "--", BENCH_TARGET)
    assert planned_jobs(p.stdout) == {"bench": 1}, p.stdout[-2000:]
    played = [(wd / "results/bench/base" / f).stat().st_mtime_ns for f in ("bench_episodes.parquet", "bench_run.json")]
    # run for real: the server is gone, so only a job that replays nothing can succeed
    smk(wd, "--configfile", micro, str(cfg), str(override), "--cores", "1", "--", BENCH_TARGET)
    res = json.loads((wd / BENCH_TARGET).read_text())
    conf, n = (0.9, 100) if "confidence" in setting else (0.95, 150)  # micro.yaml: n_bootstrap 100
    assert res["confidence"] == conf and f"({n} resamples" in res["interval"], res["interval"]
    assert played == [(wd / "results/bench/base" / f).stat().st_mtime_ns
                      for f in ("bench_episodes.parquet", "bench_run.json")]  # fmt: skip
    override.write_text("bench:\n  rollouts_per_task: 2\n")  # a setting of the rollouts replays them
    p = smk(wd, "-n", "--configfile", micro, str(cfg), str(override), "--", BENCH_TARGET)
    assert planned_jobs(p.stdout) == {"bench_rollouts": 1, "bench": 1}, p.stdout[-2000:]
