#!/usr/bin/env python
"""Does the Crafter expert survive? BALROG's horizon (2,000 steps, no goal, no early end) on eval
seeds, with what kills it; and the expert as the study's teacher (goal episodes) unchanged.

    PYTHONPATH=workflow nice -n 10 .venv/bin/python benchmarks/bench_crafter_expert.py --episodes 50 --out expert.json

- Long episodes: ``--episodes`` seeds from ``--seed-start`` (the eval split's first seed), each
  played by the expert for ``--steps`` steps or until death. No goal: the env's goal is
  ``collect_wood`` (the curriculum's first achievement, so the expert's plan is the whole
  curriculum from the start) with ``end_on_success=False``. Reported: deaths with a Wilson and a
  Clopper-Pearson interval, the cause of each death, progression (unlocked / 22) with a t
  interval, Crafter's score, each achievement's rate.
- Causes: each step's health loss is put down to its source from the state before and after the
  step: ``lava`` (the player stands on lava), ``zombie`` (an adjacent zombie struck: its cooldown
  went from 0 to 5; 7 damage when the player sleeps), ``thirst`` / ``hunger`` / ``fatigue`` (a
  vital at 0 and crafter's recovery counter ran out: 1 damage), ``arrow`` (the rest: a skeleton's
  arrow does 2). A death's cause is the source of its last loss; the totals per source are kept.
- Goal episodes (``--goal-seeds``): the expert on the study's Crafter goals (``GOALS``: the Crafter
  pilot's collect_wood within 30 steps, the family's default collect_stone within 100), success
  with a Wilson interval and a digest of the actions, so two versions of the expert can be
  compared action for action (``--compare old.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from crafter import objects  # noqa: E402

from teachable.envs.base import ExpertError  # noqa: E402
from teachable.envs.crafter.env import CrafterTextEnv  # noqa: E402
from teachable.envs.crafter.metrics import crafter_score  # noqa: E402
from teachable.envs.crafter.rules import ACHIEVEMENTS  # noqa: E402
from teachable.envs.crafter.scene import Scene  # noqa: E402
from teachable.envs.crafter.world import Snapshots  # noqa: E402
from teachable.stats import clopper_pearson, mean_interval, proportion  # noqa: E402

ENV_ID = "CrafterReward-v1"
GOALS = (("collect_wood", 30), ("collect_stone", 100))  # (goal, max_steps) of the goal episodes
VITALS = (("drink", "thirst"), ("food", "hunger"), ("energy", "fatigue"))


def _zombie_cooldowns(world) -> dict[int, int]:
    return {id(o): int(o.cooldown) for o in world._world._objects if isinstance(o, objects.Zombie)}


def losses(world, before: dict, cooldowns: dict[int, int]) -> list[tuple[str, int]]:
    """(source, damage) of the health the player lost in the step just taken (module docstring)."""
    p = world._player
    lost = before["health"] - int(p.health)
    if lost <= 0:
        return []
    if world._world[p.pos][0] == "lava":
        return [("lava", lost)]
    out = []
    for o in world._world._objects:
        if isinstance(o, objects.Zombie) and o.distance(p) <= 1 and o.cooldown == 5 and cooldowns.get(id(o), 0) == 0:
            out.append(("zombie", 7 if before["sleeping"] else 2))
    starving = [why for vital, why in VITALS if before[vital] == 0 and not (vital == "energy" and before["sleeping"])]
    if starving and before["recover"] < 0 and p._recover == 0:
        out.append(("+".join(starving), 1))
    rest = lost - sum(d for _, d in out)
    if rest > 0:
        out.append(("arrow", rest))
    return out


def long_episode(seed: int, steps: int) -> dict:
    env = CrafterTextEnv(ENV_ID, steps, goal="collect_wood", end_on_success=False, snapshots=Snapshots(4))
    env.reset(seed)
    w = env.world
    damage: Counter[str] = Counter()
    death, error, first = None, None, {}
    t = time.perf_counter()
    while not env.done:
        p = w._player
        before = {"health": int(p.health), "sleeping": bool(p.sleeping), "recover": p._recover,
                  **{v: int(p.inventory[v]) for v, _ in VITALS}}  # fmt: skip
        cooldowns = _zombie_cooldowns(w)
        try:
            action = env.expert_action()
        except ExpertError as e:
            error = f"{e.kind}: {e}"
            break
        res = env.step(action)
        hits = losses(w, before, cooldowns)
        for src, d in hits:
            damage[src] += d
        for a in res.info["unlocked"]:
            first.setdefault(a, res.info["steps_taken"])
        if res.info["dead"]:
            s = Scene(w)
            death = {
                "step": env.steps_taken, "cause": "+".join(sorted({src for src, _ in hits})) or "unknown",
                "asleep": before["sleeping"], "daylight": round(s.daylight, 3), "last_action": action,
                "vitals": {v: before[v] for v, _ in VITALS}, "hostiles_within_6": len(s.hostiles_within(6)),
            }  # fmt: skip
    return {
        "seed": seed, "steps": env.steps_taken, "seconds": time.perf_counter() - t, "death": death,
        "expert_error": error, "first_step": first, "damage": dict(damage),
    }  # fmt: skip


def long_summary(episodes: list[dict]) -> dict:
    n = len(episodes)
    deaths = [e["death"] for e in episodes if e["death"]]
    cp_lo, cp_hi = clopper_pearson(len(deaths), n, 0.05)
    rates = {a: 100.0 * sum(a in e["first_step"] for e in episodes) / n for a in ACHIEVEMENTS}
    damage: Counter[str] = Counter()
    for e in episodes:
        damage.update(e["damage"])
    return {
        "n": n,
        "deaths": proportion(len(deaths), n) | {"k": len(deaths), "clopper_pearson": [float(cp_lo), float(cp_hi)]},
        "causes": dict(Counter(d["cause"] for d in deaths).most_common()),
        "damage_by_source": dict(damage.most_common()),
        "progression": mean_interval([len(e["first_step"]) / len(ACHIEVEMENTS) for e in episodes], 0.95),
        "crafter_score": float(crafter_score(list(rates.values()))),
        "success_percent": rates,
        "expert_errors": [e["expert_error"] for e in episodes if e["expert_error"]],
        "steps_per_s": sum(e["steps"] for e in episodes) / sum(e["seconds"] for e in episodes),
    }


def goal_episodes(goal: str, max_steps: int, seeds: range) -> dict:
    env = CrafterTextEnv(ENV_ID, max_steps, goal=goal, snapshots=Snapshots(4))
    ok, digest = 0, hashlib.sha256()
    for seed in seeds:
        env.reset(seed)
        res = None
        while not env.done:
            action = env.expert_action()
            digest.update(action.encode() + b";")
            res = env.step(action)
        digest.update(b"|")
        ok += bool(res is not None and res.info["success"])
    return {"goal": goal, "max_steps": max_steps, "success": proportion(ok, len(seeds)), "actions_sha256": digest.hexdigest()}


def markdown(report: dict) -> str:
    s, a = report["long"], report["args"]
    d, p = s["deaths"], s["progression"]
    lines = [
        f"expert, no goal, {s['n']} episodes x {a['steps']} steps (seeds {a['seed_start']}..): deaths "
        f"{d['k']}/{s['n']} = {d['p']:.2f} (Wilson95 [{d['lo']:.3f}, {d['hi']:.3f}], Clopper-Pearson95 "
        f"[{d['clopper_pearson'][0]:.3f}, {d['clopper_pearson'][1]:.3f}])",
        f"progression {p['mean']:.3f} (t95 [{p['lo']:.3f}, {p['hi']:.3f}], n={p['n']}); Crafter score "
        f"{s['crafter_score']:.1f}%; {s['steps_per_s']:.0f} expert+env steps/s",
        f"causes of death: {s['causes'] or 'none'}; health lost by source: {s['damage_by_source']}",
    ]
    for e in report["episodes"]:
        if e["death"]:
            lines.append(f"  seed {e['seed']}: {e['death']}")
    if s["expert_errors"]:
        lines.append(f"expert errors: {s['expert_errors']}")
    low = {k: round(v) for k, v in s["success_percent"].items() if v < 100}
    lines.append(f"achievements below 100 %: {low}")
    for g in report.get("goals", []):
        r = g["success"]
        lines.append(
            f"goal {g['goal']} within {g['max_steps']} steps: success {r['p']:.2f} [{r['lo']:.3f}, {r['hi']:.3f}] "
            f"(n={r['n']}), actions sha256 {g['actions_sha256'][:12]}"
        )
    return "\n".join(lines)


def compare(report: dict, old: dict) -> str:
    """Whether the goal episodes of ``report`` repeat ``old``'s action for action."""
    out = []
    for new_g, old_g in zip(report.get("goals", []), old.get("goals", [])):
        same = new_g["actions_sha256"] == old_g["actions_sha256"]
        out.append(f"goal {new_g['goal']}: actions {'identical to' if same else 'differ from'} {old_g['actions_sha256'][:12]}")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seed-start", type=int, default=100000, help="the eval split's first seed")
    ap.add_argument("--goal-seeds", type=int, default=100, help="seeds per goal of GOALS (0: skip)")
    ap.add_argument("--compare", type=Path, default=None, help="an earlier --out report to compare goal actions with")
    ap.add_argument("--out", type=Path, default=None, help="write the full report as JSON here")
    a = ap.parse_args()
    t0 = time.time()
    episodes = [long_episode(a.seed_start + i, a.steps) for i in range(a.episodes)]
    report = {"args": vars(a) | {"out": str(a.out), "compare": str(a.compare)}, "long": long_summary(episodes), "episodes": episodes}
    seeds = range(a.seed_start, a.seed_start + a.goal_seeds)
    report["goals"] = [goal_episodes(g, m, seeds) for g, m in GOALS] if a.goal_seeds else []
    report["wall_seconds"] = time.time() - t0
    print(markdown(report))
    if a.compare:
        print(compare(report, json.loads(a.compare.read_text())))
    if a.out:
        a.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
