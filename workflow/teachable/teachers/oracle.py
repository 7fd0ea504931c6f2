"""Oracle teacher: the environment's privileged expert, from the exactly restored state."""

from __future__ import annotations

from dataclasses import replace

from teachable.envs.base import Advice, TextEnv
from teachable.envs.registry import action_space, close_envs

from .base import AdviceRequest, Teacher, advice_problem, failure


class OracleTeacher(Teacher):
    """Restores the snapshot (reset(seed) + replay) and asks ``env.expert_advice``. No network.

    One env instance is kept per env_id. The expert's advice (its action, and a diagnosis built
    from the state and the student's action) is checked with the same rules and the same family
    vocabulary as any teacher's; advice that breaks them is recorded as a failure, never repaired.
    """

    name = "oracle"

    def __init__(self, env_max_steps: int | None = None, env_options: dict | None = None) -> None:
        self.env_max_steps = env_max_steps
        self.env_options = dict(env_options or {})
        self._envs: dict[str, TextEnv] = {}

    def _env(self, env_id: str) -> TextEnv:
        if env_id not in self._envs:
            from teachable.envs import make_env  # the registry imports every env family

            self._envs[env_id] = make_env(env_id, max_steps=self.env_max_steps, **self.env_options)
        return self._envs[env_id]

    def advise(self, req: AdviceRequest) -> Advice:
        env = self._env(req.env_id)
        obs = env.restore(req.seed, req.actions)
        advice = env.expert_advice(req.student_action)
        meta = {"backend": self.name, **advice.meta}
        if not advice.ok:  # the expert could not act (env.expert_advice says why)
            return failure(advice.failure_reason, meta, "expert_error")
        space = action_space(req.env_id).at(env)  # a free-form family's candidates and mentions are the state's
        problem = advice_problem(advice, space.candidate_actions(obs.valid_actions), space.mentions, space.allows)
        if problem is not None:
            meta["rejected_action"] = advice.suggested_action
            meta["rejected_diagnosis"] = advice.diagnosis
            return failure(f"oracle advice rejected: {problem[1]}", meta, problem[0])
        return replace(advice, meta=meta)

    def close(self) -> None:
        close_envs(self._envs)
