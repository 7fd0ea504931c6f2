"""Lockstep rollout engine: many rollouts (any mix of tasks, start states, patches, forced first
actions, student or expert actors) advance one step at a time together, so the student acts at all
active states in one batched call (``StudentPolicy.act``, whatever the backend). Every phase that
rolls out (0, 1, 1B, 3, 5) goes through here (``study_rollouts`` reads the study's rollout
settings from the config once).

- A patch (CPT's supervision text) is in the student's context at the rollout's FIRST step only:
  the snapshot step, the moment training supervises. Later steps are unpatched, so a demo that
  names the action for the snapshot's state is never obeyed after it is stale.
- Random draws are keyed (SPEC "Paired randomness"): a student rollout's ``stream``
  (``seeding.rollout_key``: run seed, scope, unit, rollout index) gives its step t the draws of
  ``stream.step_rng(t)`` (``policies.base.Draw``: a uniform, or a generate-only backend's sample
  key), whatever earlier steps drew. Callers give rollout i of every condition of one start state
  (and of every model) the same key, so they stay paired step by step: a forced step, a patch or
  an invalid answer shifts no later draw, and the results do not depend on the batch, the shard
  or the order. The env's own randomness is the env's (``restore(seed, prefix)``).
- An expert that cannot act (``ExpertError``) ends its rollout as a failure and the result
  records the error's kind (``expert_error``: "impossible" or "planner"), so callers count it.
- A generate-only student's answer is read with the env family's lenient parser (given to
  ``act``); one that parses to no valid action is played as ``INVALID_ACTION`` (a no-op step,
  counted by the tables as invalid). On a free-form family (``registry.free_form``: HTML) every
  backend generates, and each state's parser is a ``StateReader`` (``state_reader``: the lenient
  parse and the key of an action's effect at the state); an action read from repaired text is
  stepped with ``repaired=True`` (the env counts it: ``json_repairs``). With ``record_steps`` the student gives U at each state also
  where it costs requests (a generate-only student's estimate, kept as ``StepRecord.u_est``; its
  columns: ``generated_u.u_columns``; its ``action_prob`` is NaN).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Hashable

from tqdm.auto import tqdm

from .envs import TextEnv, make_env
from .envs.registry import action_space, env_options, free_form
from .envs.base import ExpertError
from .policies.base import ActionDistribution, Context, Draw, Parser, StateReader, StudentPolicy
from .seeding import RolloutKey

STUDENT = "student"
EXPERT = "expert"


@dataclass(frozen=True)
class RolloutSpec:
    env_id: str
    seed: int
    prefix: tuple[str, ...] = ()  # actions that reach the start state (restore = reset + replay)
    actor: str = STUDENT  # "student" | "expert"
    patch: str | None = None  # in the student's context at the first step only (the snapshot step)
    forced: tuple[str, ...] = ()  # actions forced at the first steps, then the actor continues
    key: Hashable = None  # the caller's grouping key (snapshot id, condition, ...)
    stream: RolloutKey | None = None  # the key of its random draws (required for a student rollout)


@dataclass
class StepRecord:
    step_idx: int  # index in the episode (prefix included)
    instruction: str
    observation: str
    valid_actions: tuple[str, ...]
    history: tuple[str, ...]
    action: str
    source: str  # "student" | "expert" | "forced"
    action_prob: float  # student probability of the action taken (nan for expert/forced)
    U: float  # student entropy at this state (nan where not scored)
    reward: float
    patch: str | None = None  # the patch in the student's context at this step
    u_est: ActionDistribution | None = None  # U's estimate where it is not exact (None: U from the student's scores)


@dataclass
class RolloutResult:
    spec: RolloutSpec
    success: bool
    total_reward: float
    steps: int  # steps taken in this rollout (excluding the prefix)
    actions: list[str] = field(default_factory=list)
    records: list[StepRecord] = field(default_factory=list)
    expert_error: str | None = None  # ExpertError.kind when the expert could not act
    values: dict[str, Any] = field(default_factory=dict)  # the family's episode values at the end
    instruction: str = ""  # the task's instruction (mission) at the rollout's last state


class EnvPool:
    """Reuses env instances per env id (construction is the slow part for some families).
    ``options``: the family's constructor options (``registry.env_options`` of the config)."""

    def __init__(self, max_steps: int | None, options: dict[str, Any] | None = None):
        self.max_steps = max_steps
        self.options = dict(options or {})
        self._free: dict[str, list[TextEnv]] = defaultdict(list)

    def get(self, env_id: str) -> TextEnv:
        free = self._free[env_id]
        return free.pop() if free else make_env(env_id, max_steps=self.max_steps, **self.options)

    def put(self, env: TextEnv) -> None:
        self._free[env.env_id].append(env)


class _Active:
    __slots__ = ("spec", "env", "history", "reward", "steps", "actions", "records", "obs")

    def __init__(self, spec: RolloutSpec, env: TextEnv, history_len: int):
        self.spec = spec
        self.env = env
        self.obs = env.restore(spec.seed, spec.prefix)
        self.history = list(spec.prefix[-history_len:]) if history_len else []
        self.reward = 0.0
        self.steps = 0
        self.actions: list[str] = []
        self.records: list[StepRecord] = []

    def context(self) -> Context:
        """What the student sees at the current state (the patch at the first step only)."""
        return Context(instruction=self.obs.instruction, observation=self.obs.text, history=tuple(self.history),
                       valid_actions=self.obs.valid_actions, patch=self.spec.patch if self.steps == 0 else None)


def state_reader(env: TextEnv, mode: str = "lenient") -> StateReader:
    """How a free-form family's answers are read at ``env``'s current state: the family's parser
    in ``mode`` (``TextEnv.read_action``) and the key of an action's effect there
    (``action_space(env_id).at(env).key``, bound now: the reader keeps this state)."""
    space = action_space(env.env_id).at(env)
    return StateReader(lambda text, cls=type(env): cls.read_action(text, mode), space.key)


def state_parser(env: TextEnv, free: bool) -> Parser:
    """The student's parser at ``env``'s current state: a finite family's lenient parser, or a
    free-form (``free``, ``registry.free_form``) family's ``state_reader``."""
    if free:
        return state_reader(env)
    return lambda t, env=env: env.parse_action(t, "lenient")


def run_rollouts(
    specs: list[RolloutSpec],
    policy: StudentPolicy | None,
    *,
    temperature: float,
    history_len: int,
    max_steps: int | None = None,
    record_steps: bool = False,
    desc: str = "rollouts",
    progress: bool = True,
    max_active: int = 4096,
    env_options: dict[str, Any] | None = None,
) -> list[RolloutResult]:
    """Run every spec to success, failure or the step limit; results in the order of ``specs``.

    Rollouts advance in lockstep: each iteration acts at all active student states with one
    ``policy.act`` call.
    ``max_active`` bounds the number of live envs (memory).
    """
    if policy is None and any(s.actor == STUDENT for s in specs):
        raise ValueError("student rollouts requested but no student policy was given")
    unkeyed = next((s for s in specs if s.actor == STUDENT and s.stream is None), None)
    if unkeyed is not None:
        raise ValueError(f"student rollout {unkeyed.key!r} has no stream (seeding.rollout_key): its draws would "
                         "be unpaired")  # fmt: skip
    pool = EnvPool(max_steps, env_options)
    free = {env_id: free_form(env_id) for env_id in {s.env_id for s in specs}}
    results: list[RolloutResult | None] = [None] * len(specs)
    pending = list(range(len(specs)))[::-1]
    active: dict[int, _Active] = {}
    bar = tqdm(total=len(specs), desc=desc, disable=not progress, mininterval=1.0)

    def finish(i: int, a: _Active, success: bool, expert_error: str | None = None) -> None:
        results[i] = RolloutResult(a.spec, success, a.reward, a.steps, a.actions, a.records, expert_error,
                                   a.env.episode_values(), a.obs.instruction)
        pool.put(a.env)
        bar.update(1)

    while pending or active:
        while pending and len(active) < max_active:
            i = pending.pop()
            active[i] = _Active(specs[i], pool.get(specs[i].env_id), history_len)
        # choose actions: forced first, then the expert, then one batched student call
        chosen: dict[int, tuple[str, str, float, float]] = {}
        u_est: dict[int, ActionDistribution] = {}  # U's estimate at the state, where it is not exact
        need_student: list[int] = []
        repaired: set[int] = set()  # student actions read from text the parser repaired
        for i, a in list(active.items()):
            if a.steps < len(a.spec.forced):
                chosen[i] = (a.spec.forced[a.steps], "forced", float("nan"), float("nan"))
            elif a.spec.actor == EXPERT:
                try:
                    chosen[i] = (a.env.expert_action(), EXPERT, float("nan"), float("nan"))
                except ExpertError as e:  # counted by the caller through ``expert_error``
                    finish(i, a, False, e.kind)
                    del active[i]
            else:
                need_student.append(i)
        if need_student:
            ctxs = [active[i].context() for i in need_student]
            draws = [Draw(active[i].spec.stream.step_rng(active[i].steps)) for i in need_student]
            parsers = [state_parser(active[i].env, free[active[i].spec.env_id]) for i in need_student]
            acts = policy.act(ctxs, draws, temperature=temperature, parsers=parsers, with_u=record_steps)
            for i, act in zip(need_student, acts):
                chosen[i] = (act.action, STUDENT, act.prob, act.U)
                if act.u_est is not None:
                    u_est[i] = act.u_est
                if act.repaired:
                    repaired.add(i)
        for i, (action, source, prob, u) in chosen.items():
            a = active[i]
            if record_steps:
                a.records.append(
                    StepRecord(
                        step_idx=a.env.steps_taken,
                        instruction=a.obs.instruction,
                        observation=a.obs.text,
                        valid_actions=a.obs.valid_actions,
                        history=tuple(a.history),
                        action=action,
                        source=source,
                        action_prob=prob,
                        U=u,
                        reward=0.0,
                        patch=a.spec.patch if a.steps == 0 and source == STUDENT else None,
                        u_est=u_est.get(i),
                    )
                )
            res = a.env.step(action, repaired=True) if i in repaired else a.env.step(action)
            a.obs = res.observation
            a.reward += res.reward
            a.steps += 1
            a.actions.append(action)
            if history_len:
                a.history = (a.history + [action])[-history_len:]
            if record_steps:
                a.records[-1].reward = res.reward
            if res.done:
                finish(i, a, a.env.is_success(a.reward, res.info))
                del active[i]
    bar.close()
    return results  # type: ignore[return-value]


def expert_finishes(env: TextEnv, seed: int, prefix: tuple[str, ...] | list[str]) -> tuple[bool, int, str | None]:
    """The expert takes over at the state after ``prefix`` and plays to the end of the episode:
    (success, steps it took, ExpertError kind or None). One env, no student: for the few
    single expert rollouts outside a lockstep batch (mining's recoverability checks)."""
    env.restore(seed, prefix)
    total, steps = 0.0, 0
    try:
        while True:
            res = env.step(env.expert_action())
            total += res.reward
            steps += 1
            if res.done:
                return env.is_success(total, res.info), steps, None
    except ExpertError as e:
        return False, steps, e.kind


def study_rollouts(specs: list[RolloutSpec], policy: StudentPolicy | None, cfg: dict, **kwargs) -> list[RolloutResult]:
    """``run_rollouts`` with the study's rollout settings read from the config once: sampling
    temperature (``student.temperature``), history length and step limit (``env``)."""
    return run_rollouts(
        specs, policy, temperature=float(cfg["student"]["temperature"]),
        history_len=int(cfg["env"]["history_len"]), max_steps=cfg["env"].get("max_steps"),
        env_options=env_options(cfg["env"]), **kwargs,
    )  # fmt: skip


def first_contexts(specs: list[RolloutSpec], cfg: dict) -> list[Context]:
    """The context the student sees at the first step of each (student) spec, as ``run_rollouts``
    builds it (restored state, history from the prefix, the spec's patch): its first-step
    distribution is the student's ``distribution`` of it, sampled at ``student.temperature``."""
    pool = EnvPool(cfg["env"].get("max_steps"), env_options(cfg["env"]))
    out = []
    for spec in specs:
        a = _Active(spec, pool.get(spec.env_id), int(cfg["env"]["history_len"]))
        out.append(a.context())
        pool.put(a.env)
    return out


def group_success(results: list[RolloutResult]) -> dict[Any, tuple[int, int]]:
    """(successes, n) per spec key."""
    out: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
    for r in results:
        out[r.spec.key][0] += int(r.success)
        out[r.spec.key][1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}
