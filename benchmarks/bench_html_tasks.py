#!/usr/bin/env python
"""Benchmark the HTML family's tasks (workflow/teachable/envs/html/tasks.py, grading.py).

Prints
  - the archetypes per category (a Markdown table: count, difficulties, names, the mvp ones);
  - the oracle over N tasks of an id and mode (seeds 0..N-1): each task's reference programs run
    in a fresh sandbox each (``run_sandboxed``, --workers at once), the answer read from their
    output is checked against the generator's ground truth, and the oracle's answer
    (``Task.oracle_answer``) is graded after as many tool calls as it made. A task whose programs
    fail or read another answer counts as a failure (reward 0). Reported: success (reward >= 0.5)
    with its Wilson interval, mean reward with a Student-t interval, perfect on the answerable
    tasks (reward 1) with a Wilson interval, each with n; the agreement of the programs with the
    ground truth; the sandbox's median seconds per call. Needs `make sandbox`.

    PYTHONPATH=workflow .venv/bin/python benchmarks/bench_html_tasks.py --tasks 200
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))


def category_table() -> str:
    from teachable.envs.html.tasks import ARCHETYPES, CATEGORIES

    rows = ["| category | archetypes | easy / medium / hard | names (mvp starred) |", "| --- | --- | --- | --- |"]
    for cat in CATEGORIES:
        arch = [a for a in ARCHETYPES.values() if a.category == cat]
        by = Counter(a.difficulty for a in arch)
        names = ", ".join(a.name + ("*" if a.mvp else "") for a in arch)
        rows.append(f"| {cat} | {len(arch)} | {by['easy']} / {by['medium']} / {by['hard']} | {names} |")
    rows.append(f"| all | {len(ARCHETYPES)} | "
                + " / ".join(str(sum(a.difficulty == d for a in ARCHETYPES.values())) for d in ("easy", "medium", "hard"))
                + f" | {sum(a.mvp for a in ARCHETYPES.values())} mvp |")
    return "\n".join(rows)


def oracle_episode(task) -> dict:
    """Run the task's reference programs in the sandbox; grade the oracle's answer."""
    from teachable.envs.html.grading import evidence_ok, grade, normalise
    from teachable.envs.html.sandbox import run_sandboxed
    from teachable.envs.html.tasks import read_answer

    outs, seconds, error = [], [], None
    for code in task.reference_calls:
        r = run_sandboxed(code, task.html)
        seconds.append(r.seconds)
        if r.exit_code != 0:
            error = r.error
            break
        outs.append(r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout)
    agrees = False
    if error is None:
        got = read_answer(task, outs)
        agrees = evidence_ok(task, got) if task.limitation else normalise(task, got) == normalise(task, task.answer)
    g = grade(task, task.oracle_answer, len(task.reference_calls))
    reward = g.reward if agrees else 0.0
    return {"archetype": task.archetype, "answerable": task.limitation is None, "agrees": agrees, "error": error,
            "reward": reward, "seconds": seconds}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env-id", default="HTMLExtract-v0", help="the task id (default %(default)s)")
    ap.add_argument("--mode", default="all", help="env.mode: mvp, all or tiered (default %(default)s)")
    ap.add_argument("--tasks", type=int, default=200, help="tasks, seeds 0..N-1 (default %(default)s)")
    ap.add_argument("--workers", type=int, default=2, help="sandboxes at once (default %(default)s)")
    a = ap.parse_args(argv)
    from teachable.envs.html.grading import is_success
    from teachable.envs.html.tasks import make_task
    from teachable.stats import mean_interval, proportion

    print(category_table())
    tasks = [make_task(a.env_id, s, a.mode) for s in range(a.tasks)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(a.workers) as ex:
        eps = list(ex.map(oracle_episode, tasks))
    wall = time.perf_counter() - t0
    rewards = [e["reward"] for e in eps]
    succ = proportion(sum(is_success(r) for r in rewards), len(eps))
    mean = mean_interval(rewards, 0.95)
    answerable = [e for e in eps if e["answerable"]]
    perfect = proportion(sum(e["reward"] == 1.0 for e in answerable), len(answerable))
    agree = proportion(sum(e["agrees"] for e in eps), len(eps))
    calls = [s for e in eps for s in e["seconds"]]
    print(f"\n{a.env_id} (mode {a.mode}), the oracle over {len(eps)} tasks (seeds 0..{a.tasks - 1}), "
          f"{len(set(e['archetype'] for e in eps))} archetypes:")
    print(f"success {succ['p']:.3f} [{succ['lo']:.3f}, {succ['hi']:.3f}] (n = {succ['n']})")
    print(f"mean reward {mean['mean']:.3f} [{mean['lo']:.3f}, {mean['hi']:.3f}] (n = {mean['n']}; "
          f"limitation tasks score 0.5 at best)")
    print(f"reward 1 on answerable tasks {perfect['p']:.3f} [{perfect['lo']:.3f}, {perfect['hi']:.3f}] "
          f"(n = {perfect['n']})")
    print(f"reference programs read the ground truth {agree['p']:.3f} [{agree['lo']:.3f}, {agree['hi']:.3f}] "
          f"(n = {agree['n']})")
    print(f"sandbox: {len(calls)} calls, median {statistics.median(calls):.3f} s per call; {wall:.1f} s wall "
          f"with {a.workers} workers")
    for e in eps:
        if not e["agrees"]:
            print(f"  failed: {e['archetype']}: {e['error'] or 'another answer'}")


if __name__ == "__main__":
    main()
