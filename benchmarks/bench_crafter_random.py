#!/usr/bin/env python
"""Benchmark a uniformly random agent on Crafter under the BALROG protocol (``env.protocol:
balrog``: no goal, death or the 2,000-step cap, BALROG's hidden first no-op), against crafter's
published random score, 1.55 %.

    PYTHONPATH=workflow .venv/bin/python benchmarks/bench_crafter_random.py --episodes 1000 --out random.json

- Episodes: ``--episodes`` seeds from ``--seed-start``, each played through ``CrafterTextEnv``
  (the text rendered, as a student would read it); episode i draws its actions uniformly from the
  17 with ``numpy.random.default_rng(i)``. ``--time-budget`` stops early (after the episode that
  passes it) so a slow machine reports the n it ran; the output says n.
- Reported: Crafter's score (``metrics.crafter_score`` of the 22 success rates in percent) with
  a percentile bootstrap interval over episodes (``stats.cluster_bootstrap_rates_statistic``, each
  episode its own cluster), whether 1.55 % lies inside it; progression with its bootstrap interval
  (``stats.ClusterBootstrap``); each achievement's rate with its Wilson interval; deaths, mean
  episode length and seconds per episode.
- ``--band N``: the 0.1 % and 99.9 % quantiles of the score of N-episode samples drawn from these
  episodes (the range the test suite's quick N-episode check may use); ``--episodes-out``
  writes each episode (seed, achievements, steps, death, seconds) as a JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from teachable.envs.crafter.env import CrafterTextEnv  # noqa: E402
from teachable.envs.crafter.metrics import crafter_score  # noqa: E402
from teachable.envs.crafter.rules import ACHIEVEMENTS  # noqa: E402
from teachable.stats import ClusterBootstrap, cluster_bootstrap_rates_statistic, proportion  # noqa: E402

PUBLISHED_RANDOM_SCORE = 1.55  # percent: crafter's random agent (Hafner 2021, crafter's scores/)


def random_episode(seed: int, max_steps: int | None = None) -> dict:
    """One episode of the uniform random agent under the BALROG protocol: its achievements,
    length, death and seconds."""
    env = CrafterTextEnv("CrafterReward-v1", max_steps, protocol="balrog")
    rng = np.random.default_rng(seed)
    t = time.perf_counter()
    env.reset(seed)
    res = None
    while not env.done:
        res = env.step(env.ACTIONS[int(rng.integers(len(env.ACTIONS)))])
    return {"seed": seed, "unlocked": list(res.info["unlocked"]), "steps": env.steps_taken,
            "dead": bool(res.info["dead"]), "seconds": time.perf_counter() - t}  # fmt: skip


def summary(episodes: list[dict], confidence: float = 0.95, n_bootstrap: int = 2000, seed: int = 0) -> dict:
    """The score, progression, achievement rates, deaths and lengths of ``episodes`` (module docstring)."""
    hits = np.array([[a in e["unlocked"] for a in ACHIEVEMENTS] for e in episodes], dtype=float)
    ids = np.arange(len(episodes))
    score = cluster_bootstrap_rates_statistic(hits, ids, crafter_score, confidence, n_bootstrap, seed)
    bs = ClusterBootstrap(confidence, n_bootstrap, seed)
    prog = bs.rate(hits.sum(axis=1) / len(ACHIEVEMENTS), ids)
    n = len(episodes)
    return {
        "n": n, "protocol": "balrog", "confidence": confidence,
        "crafter_score": score, "published_random_score": PUBLISHED_RANDOM_SCORE,
        "published_inside_interval": bool(score["lo"] <= PUBLISHED_RANDOM_SCORE <= score["hi"]),
        "progression": prog,
        "achievements": {a: proportion(int(hits[:, i].sum()), n, confidence) for i, a in enumerate(ACHIEVEMENTS)},
        "deaths": proportion(sum(e["dead"] for e in episodes), n, confidence),
        "mean_steps": float(np.mean([e["steps"] for e in episodes])),
        "seconds_per_episode": float(np.mean([e["seconds"] for e in episodes])),
    }  # fmt: skip


def score_band(episodes: list[dict], size: int, draws: int = 20000, seed: int = 0) -> list[float]:
    """The 0.1 % and 99.9 % quantiles of the score of ``size``-episode samples (with replacement)."""
    hits = np.array([[a in e["unlocked"] for a in ACHIEVEMENTS] for e in episodes], dtype=float)
    idx = np.random.default_rng(seed).integers(len(episodes), size=(draws, size))
    scores = crafter_score(100 * hits[idx].mean(axis=1))
    return [float(np.quantile(scores, 0.001)), float(np.quantile(scores, 0.999))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=None, help="the cap (default: the protocol's 2,000)")
    ap.add_argument("--time-budget", type=float, default=None, help="seconds; stop after the episode that passes it")
    ap.add_argument("--band", type=int, default=None, help="also report the score band of samples of this size")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--episodes-out", type=Path, default=None, help="also write the episodes, one JSON line each")
    args = ap.parse_args(argv)
    start, episodes = time.perf_counter(), []
    for i in range(args.episodes):
        episodes.append(random_episode(args.seed_start + i, args.max_steps))
        if args.time_budget is not None and time.perf_counter() - start > args.time_budget:
            break
    if args.episodes_out:
        args.episodes_out.write_text("".join(json.dumps(e) + "\n" for e in episodes))
    res = summary(episodes)
    res["episodes_asked"] = args.episodes
    res["wall_seconds"] = time.perf_counter() - start
    if args.band:
        res["band"] = {"size": args.band, "score_quantiles_0.001_0.999": score_band(episodes, args.band)}
    text = json.dumps(res, indent=1)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
