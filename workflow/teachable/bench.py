"""``teachable bench``: one student plays the env family's bench split; its benchmark result.

Any student ``policies.make_student`` builds: an HF model directory with an optional LoRA
adapter (``student.backend: hf``), or the OpenAI-compatible endpoint (``student.backend:
openai`` with ``student.openai``); or, with ``expert`` (``--expert``), the env family's
privileged expert in the student's place (the oracle's bench numbers; a family with that
capability). The design is Phase 3's overall suite on another split:

- Tasks: the first ``bench.tasks`` seeds of ``splits.bench`` (disjoint from train, eval and
  demo: ``splits.check_disjoint``) on every level (``bench.levels``: env ids of ``env.id``'s
  family; empty = ``env.id``), each played ``bench.rollouts_per_task`` times from reset
  through ``rollouts.study_rollouts``.
- Common random numbers: rollout i of task t draws with ``rollout_key(seed, "bench", t, i)``
  (step s: (t, i, s)) whatever the model, so two benches of one config play the same tasks with the same streams
  and ``teachable compare`` pairs them by task.
- One expert rollout per task gives ``expert_steps`` (for ``wasted_steps``), as in Phase 3.
- Per-episode rows: ``schemas.BENCH_EPISODES`` (the definitions of ``evaluation.rollout_rows``,
  plus the task's instruction and archetype: ``registry.task_archetype``), written beside the
  JSON as ``bench_episodes.parquet``.
- Two steps, so that a statistics setting replays nothing: ``play_bench`` (rule bench_rollouts,
  ``teachable bench-rollouts``) plays and writes the episodes and ``bench_run.json`` (the model,
  its usage, what was benched); ``summarize_bench`` (rule bench, ``teachable bench-results``)
  computes ``bench_results.json`` from them at ``phase3.confidence`` / ``phase3.n_bootstrap``.
  ``run_bench`` (``teachable bench``) does both.

``bench_results.json``: ``evaluation_tables.benchmark_json``'s fields (pass rate with n and
interval, average reward and steps; the family's headline metrics) with ``suite: bench``, plus
``metrics`` (success rate, mean reward, mean steps, invalid-output rate, and the mean of each
numeric episode value the family declares, ``Family.episode_columns``, e.g. a graded reward,
tool calls, a progression), ``by_level`` (the same
per env id), ``by_archetype`` (the same per task archetype, where the family defines them,
``TextEnv.archetype``; tasks without one, if any, under ``NO_ARCHETYPE``), ``achievements``
(where the family's metrics rate achievements, ``success:<achievement>``: each one's success
rate, from ``evaluation_tables.family_metrics_table``) and ``usage``. Every interval is the
percentile bootstrap over tasks of ``stats.ClusterBootstrap`` (rollouts of one task are not
independent), at ``phase3.confidence`` over ``phase3.n_bootstrap`` resamples seeded by the
config seed; each carries ``n`` (rollouts = tasks x rollouts per task) and ``n_tasks``.

``usage``: a metered student's requests, cache hits, tokens, cost and retries
(``StudentPolicy.usage_summary`` of an API student) with wall seconds and requests per second; a
local student counts none of them (``counted: false``, the counts null: it scores actions
in-process).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd

from .envs.registry import PRIVILEGED_EXPERT, check_env_id, family_of, task_archetype
from .evaluation import rollout_rows
from .evaluation_tables import benchmark_json, family_metrics_table, rate_of
from .rollouts import EXPERT, STUDENT, RolloutSpec, study_rollouts
from .schemas import BENCH_EPISODES
from .seeding import rollout_key
from .splits import check_disjoint, first_seeds, task_id
from .stats import ClusterBootstrap

log = logging.getLogger(__name__)

BENCH_JSON = "bench_results.json"
EPISODES_FILE = Path(BENCH_EPISODES.path).name
RUN_FILE = "bench_run.json"  # the model, its usage and what was benched (play_bench)
# name in the JSON -> per-rollout column; each a per-rollout mean with its interval over tasks
METRICS = {"success_rate": "success", "mean_reward": "return", "mean_steps": "steps", "invalid_rate": "invalid_rate"}
USAGE_KEYS = ("requests", "cache_hits", "prompt_tokens", "completion_tokens", "cost_usd", "transport_retries",
              "failures")  # fmt: skip
CONFIG_SECTIONS = ("env", "student", "bench", "phase3")
NO_ARCHETYPE = "(no archetype)"  # by_archetype's group of tasks whose instruction has none (a family that has some)
NUMERIC_KINDS = ("float", "int", "bool")  # the kinds of episode values the bench averages


def bench_config(cfg: dict) -> dict:
    """The config sections the bench reads, with the schema's defaults filled in and checked
    (``config.section``); ``seed`` and ``splits`` are required."""
    from .config import section

    missing = [k for k in ("seed", "splits", "env") if k not in cfg]
    if missing:
        raise ValueError(f"the bench's config lacks key(s) {missing} (give the study's config)")
    out = dict(cfg)
    for k in CONFIG_SECTIONS:
        out[k] = section(k, cfg.get(k))
    check_disjoint(out["splits"])
    return out


def bench_levels(cfg: dict) -> list[str]:
    """The env ids benched: ``bench.levels`` (all of ``env.id``'s family), or ``env.id``."""
    levels = list(cfg["bench"]["levels"]) or [cfg["env"]["id"]]
    fam = family_of(cfg["env"]["id"]).name
    for e in levels:
        try:
            check_env_id(e)
        except (ValueError, NotImplementedError, ImportError) as exc:
            raise ValueError(f"config key bench.levels: {exc}") from None
        if family_of(e).name != fam:
            raise ValueError(f"config key bench.levels: {e!r} is not of env.id's family ({fam}); one family per bench")
    if len(set(levels)) != len(levels):
        raise ValueError(f"config key bench.levels repeats an env id: {levels}")
    return levels


def bench_seeds(cfg: dict) -> list[int]:
    """The first ``bench.tasks`` seeds of the bench split."""
    return first_seeds(cfg["splits"], "bench", cfg["bench"]["tasks"], "bench.tasks")


def bench_specs(cfg: dict, player: str = STUDENT) -> tuple[list[RolloutSpec], list[dict]]:
    """The player's specs (``player``: the student, or ``EXPERT`` in its place; with the row
    metadata ``evaluation.rollout_rows`` reads) followed by one expert spec per task.
    Model-independent: the same list for every student."""
    seed0, r = int(cfg["seed"]), int(cfg["bench"]["rollouts_per_task"])
    specs, meta = [], []
    for env_id in bench_levels(cfg):
        for s in bench_seeds(cfg):
            tid = task_id(env_id, s)
            for i in range(r):
                rk = rollout_key(seed0, "bench", tid, i)
                specs.append(RolloutSpec(env_id, int(s), actor=player, key=("bench", tid, i), stream=rk))
                meta.append(dict(suite="overall", env_id=env_id, seed=int(s), task_id=tid, snapshot_id=None,
                                 quadrant=None, rollout_idx=i, rng_seed=rk.seed, start=(env_id, int(s), ())))  # fmt: skip
    for e, s, prefix in dict.fromkeys(m["start"] for m in meta):
        specs.append(RolloutSpec(e, s, prefix=prefix, actor=EXPERT, key=("expert", (e, s, prefix))))
    return specs, meta


def bench_episodes(model_id: str, student, cfg: dict, progress: bool = True) -> pd.DataFrame:
    """Every bench rollout of ``student`` (None: the env's expert plays), one ``BENCH_EPISODES`` row each."""
    specs, meta = bench_specs(cfg, STUDENT if student is not None else EXPERT)
    results = study_rollouts(specs, student, cfg, desc=f"bench {model_id}", progress=progress)
    rows = rollout_rows(model_id, results, meta).drop(columns=["suite", "snapshot_id", "quadrant"])
    played = results[: len(meta)]  # the student's, in the order of meta (the rows'); then the experts'
    rows["instruction"] = [r.instruction for r in played]
    rows["archetype"] = [task_archetype(m["env_id"], r.instruction) for r, m in zip(played, meta)]
    return rows


def as_overall(episodes: pd.DataFrame) -> pd.DataFrame:
    """Bench episodes as Phase 3 overall-suite rows (tasks from reset), so ``evaluation_tables``' and
    ``compare``'s functions read them unchanged."""
    return episodes.assign(suite="overall", snapshot_id=None, quadrant=None)


def _interval(r: dict) -> dict:
    return {"value": r["value"], "n": int(r["n"]), "n_tasks": int(r["n_clusters"]), "lo": r["lo"], "hi": r["hi"],
            "reason": r["reason"]}  # fmt: skip


def episode_value_columns(episodes: pd.DataFrame) -> list[str]:
    """The numeric episode values (``Family.episode_columns`` of kind float, int or bool) the
    episodes' family declares and they carry: the bench averages them beside ``METRICS``."""
    fams = {family_of(e).name: family_of(e) for e in episodes["env_id"].unique()}
    return [c for f in fams.values() for c, (kind, _) in f.episode_columns.items()
            if kind in NUMERIC_KINDS and c in episodes.columns and c not in METRICS]  # fmt: skip


def _metrics(bs: ClusterBootstrap, g: pd.DataFrame) -> dict:
    cols = {**METRICS, **{c: c for c in episode_value_columns(g)}}
    return {name: _interval(rate_of(bs, g, col, "task_id")) for name, col in cols.items()}


def _breakdown(bs: ClusterBootstrap, ov: pd.DataFrame, by: str) -> dict[str, dict]:
    """``_metrics`` per value of column ``by`` (a property of the task: env id, archetype)."""
    return {str(k): {**_metrics(bs, g), "n_tasks": int(g["task_id"].nunique()), "n_rollouts": len(g)}
            for k, g in sorted(ov.groupby(by), key=lambda t: t[0])}  # fmt: skip


def usage_of(student, seconds: float, backend: str = "hf") -> dict[str, Any]:
    """The job's requests, tokens and cost (a ``metered`` student: an API's), or none counted (a
    local ``backend``)."""
    if student.metered:
        u = student.usage_summary()
        rate = u["requests"] / seconds if seconds > 0 else None
        return {"backend": backend, "counted": True, "model": u["model"], **{k: u[k] for k in USAGE_KEYS},
                "seconds": seconds, "requests_per_s": rate}  # fmt: skip
    return {"backend": backend, "counted": False, **{k: None for k in USAGE_KEYS}, "seconds": seconds,
            "requests_per_s": None,
            "note": f"a local {backend} student scores actions in-process: no API requests, tokens or cost are counted"}


def bench_results(episodes: pd.DataFrame, model_id: str, usage: dict | None = None, confidence: float = 0.95,
                  n_bootstrap: int = 2000, seed: int = 0, about: dict | None = None) -> dict:  # fmt: skip
    """bench_results.json of one student's episodes (module docstring)."""
    if episodes.empty:
        raise ValueError(f"no bench episodes for model {model_id!r}")
    ov = as_overall(episodes)
    res = benchmark_json(ov, model_id, confidence, n_bootstrap, seed)
    bs = ClusterBootstrap(confidence, n_bootstrap, seed)
    res["suite"] = "bench"
    res["metrics"] = _metrics(bs, ov)
    res["by_level"] = _breakdown(bs, ov, "env_id")
    if ov["archetype"].notna().any():  # the family defines archetypes (TextEnv.archetype)
        res["by_archetype"] = _breakdown(bs, ov.assign(archetype=ov["archetype"].fillna(NO_ARCHETYPE)), "archetype")
    fam = family_metrics_table(ov, confidence, n_bootstrap, seed)
    ach = fam[fam["metric"].str.startswith("success:")]
    if len(ach):
        res["achievements"] = {r["metric"].removeprefix("success:"): {
            "value": r["value"], "n": int(r["n"]), "n_tasks": int(r["n_tasks"]), "lo": r["lo"], "hi": r["hi"]}
            for _, r in ach.iterrows()}  # fmt: skip
    res["usage"] = usage
    res["episodes"] = EPISODES_FILE
    res.update(about or {})
    return res


def expert_usage(seconds: float) -> dict[str, Any]:
    """The usage of an expert player: none counted (it plans from the env's state)."""
    return {"backend": EXPERT, "counted": False, **{k: None for k in USAGE_KEYS}, "seconds": seconds,
            "requests_per_s": None, "note": "the env's privileged expert plays: no model, no requests"}  # fmt: skip


def play_bench(cfg: dict, model_dir: str | None, adapter_dir: str | None, model_id: str, out_dir: str | Path,
               progress: bool = True, expert: bool = False) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """Play every bench rollout of one student (``expert``: the env family's privileged expert
    instead, no model) and write them to ``out_dir``: the episodes (``bench_episodes.parquet``)
    and ``bench_run.json`` (``RUN_FILE``: the model, its usage and what was benched), everything
    ``bench_results.json`` needs besides the statistics settings (rule bench_rollouts;
    ``summarize_bench`` is rule bench)."""
    from .documents import BENCH_RUN
    from .io import write_doc, write_table
    from .policies import loads_model_dir, make_student

    cfg = bench_config(cfg)
    levels = bench_levels(cfg)
    bench_seeds(cfg)  # a bad bench.tasks is an error before the student loads
    backend = EXPERT if expert else cfg["student"]["backend"]
    local = not expert and loads_model_dir(backend)
    if expert:
        fam = family_of(levels[0])
        if PRIVILEGED_EXPERT not in fam.capabilities:
            raise ValueError(f"--expert: the {fam.name} family has no privileged expert to bench")
        if model_dir or adapter_dir:
            raise ValueError("--expert benches the env's expert: give no --model or --adapter")
    elif local and not model_dir:
        raise ValueError(f"student.backend: {backend} benches a local model: give --model (a HF model directory)")
    student = None if expert else make_student(cfg["student"], model_dir, adapter_dir, merge_adapter=True,
                                               env_id=levels[0])  # fmt: skip
    t0 = time.perf_counter()
    try:
        episodes = bench_episodes(model_id, student, cfg, progress=progress)
    finally:
        if student is not None:
            student.close()
    seconds = time.perf_counter() - t0
    b = cfg["bench"]
    run = {"suite": "bench_run", "model": model_id, "episodes": EPISODES_FILE,
           "usage": expert_usage(seconds) if expert else usage_of(student, seconds, backend),
           "about": {"backend": backend, "model_dir": model_dir if local else None, "adapter": adapter_dir,
                     "levels": levels, "temperature": float(cfg["student"]["temperature"]),
                     "split": {"name": "bench", "start": int(cfg["splits"]["bench"]["start"]), "tasks": int(b["tasks"])},
                     "tasks_per_level": int(b["tasks"])}}  # fmt: skip
    out_dir = Path(out_dir)
    write_table(episodes, BENCH_EPISODES, out_dir / EPISODES_FILE)
    write_doc(run, BENCH_RUN, out_dir / RUN_FILE)
    return episodes, run


def _read_with_episodes(path: str | Path, suite: str, noun: str, what: str) -> tuple[dict, pd.DataFrame]:
    """A bench JSON of ``suite`` (a ``noun``) and its episodes (the Parquet it names, beside it);
    errors name the file (``what``: the file it should have been)."""
    from .documents import BENCH_RESULTS, BENCH_RUN, check_doc
    from .io import read_json, read_table

    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("suite") != suite or "episodes" not in doc:
        raise ValueError(f"{path} is not a {noun} (expected {what})")
    check_doc(doc, BENCH_RUN if suite == "bench_run" else BENCH_RESULTS, str(path))
    ep_path = Path(path).parent / doc["episodes"]
    eps = read_table(ep_path, BENCH_EPISODES)
    if set(eps["model_id"]) != {doc["model"]}:
        raise ValueError(f"{ep_path} holds model(s) {sorted(set(eps['model_id']))}, but {path} is model "
                         f"{doc['model']!r}: the files belong to different benches")  # fmt: skip
    return doc, eps


def read_run(path: str | Path) -> tuple[dict, pd.DataFrame]:
    """A bench_run.json and its episodes (the Parquet beside it); errors name the file."""
    return _read_with_episodes(path, "bench_run", "bench run", f"the {RUN_FILE} `teachable bench-rollouts` writes")


def summarize_bench(run_path: str | Path, out: str | Path, confidence: float = 0.95, n_bootstrap: int = 2000,
                    seed: int = 0) -> dict:  # fmt: skip
    """bench_results.json (``out``, beside the run: it names the episodes by file name) from a
    bench run's episodes and usage, with the statistics settings alone (rule bench)."""
    from .documents import BENCH_RESULTS
    from .io import write_doc

    if Path(out).resolve().parent != Path(run_path).resolve().parent:
        raise ValueError(f"--out {out} must lie beside the bench run {run_path} (bench_results.json names its "
                         "episodes by file name)")  # fmt: skip
    run, episodes = read_run(run_path)
    res = bench_results(episodes, run["model"], run["usage"], confidence, n_bootstrap, seed, run["about"])
    write_doc(res, BENCH_RESULTS, out)
    return res


def run_bench(cfg: dict, model_dir: str | None, adapter_dir: str | None, model_id: str, out: str | Path,
              progress: bool = True, expert: bool = False) -> dict:  # fmt: skip
    """Bench one student (``expert``: the env's expert): ``play_bench`` then ``summarize_bench``
    at ``phase3.confidence`` and ``phase3.n_bootstrap`` (seeded by the config seed); writes
    ``out`` (bench_results.json) with the episodes and ``bench_run.json`` beside it."""
    cfg = bench_config(cfg)
    play_bench(cfg, model_dir, adapter_dir, model_id, Path(out).parent, progress=progress, expert=expert)
    p3 = cfg["phase3"]
    return summarize_bench(Path(out).parent / RUN_FILE, out, float(p3["confidence"]), int(p3["n_bootstrap"]),
                           int(cfg["seed"]))  # fmt: skip


def read_bench(path: str | Path) -> tuple[dict, pd.DataFrame]:
    """A bench_results.json and its episodes (the Parquet beside it); errors name the file."""
    return _read_with_episodes(path, "bench", "bench result", "the bench_results.json `teachable bench` writes")
