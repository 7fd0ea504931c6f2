"""BabyAI's privileged expert: minigrid's ``BabyAIBot`` on the agent's whole region (see the
package docstring), cached while the trajectory follows its own actions; the oracle teacher's
advice (``expert_advice``) built on it."""

from __future__ import annotations

import numpy as np
from minigrid.envs.babyai.core.verifier import GoToInstr, PickupInstr, PutNextInstr
from minigrid.utils.baby_ai_bot import BabyAIBot, DropSubgoal, GoNextToSubgoal

from ..base import Advice, ExpertError
from .actions import _IDX_TO_ACTION, classify_error


class BotExpert:
    """The expert part of ``BabyAITextEnv`` (a mixin: it reads the env's state attributes)."""

    def _drop_bot(self) -> None:
        self._bot = None
        self._bot_version = -1
        self._bot_action = -1
        self._expert_cache = None

    def region_mask(self) -> np.ndarray:
        """Cells reachable from the agent without passing a shut door (objects do not block:
        they can be moved), plus the walls and doors that bound them."""
        env = self._env
        grid = env.grid
        mask = np.zeros((grid.width, grid.height), dtype=bool)
        start = (int(env.agent_pos[0]), int(env.agent_pos[1]))
        mask[start] = True
        queue = [start]
        while queue:
            i, j = queue.pop()
            for ni, nj in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                if not (0 <= ni < grid.width and 0 <= nj < grid.height) or mask[ni, nj]:
                    continue
                mask[ni, nj] = True
                cell = grid.get(ni, nj)
                if cell is None or (cell.type != "wall" and (cell.type != "door" or cell.is_open)):
                    queue.append((ni, nj))
        return mask

    def _fresh_bot(self) -> BabyAIBot:
        env = self._env
        bot = BabyAIBot(env)
        if self.omniscient_expert:
            bot.vis_mask[:, :] = self.region_mask()
        carrying = env.carrying
        instr = env.instrs
        if carrying is not None and isinstance(instr, (PutNextInstr, PickupInstr, GoToInstr)):
            if isinstance(instr, PutNextInstr) and any(
                o is carrying for o in instr.desc_move.obj_set
            ):
                # already holding the object to move: only "go next to the fixed one, put it down"
                # remains (the plan is [Drop, GoNextTo(fixed), Pickup, GoNextTo(move)])
                del bot.stack[-2:]
            else:
                # holding something the plan cannot use: free the hands first
                drop_pos = bot._find_drop_pos()
                if drop_pos is not None:
                    bot.stack.append(DropSubgoal(bot))
                    bot.stack.append(GoNextToSubgoal(bot, drop_pos))
        return bot

    def expert_action(self) -> str:
        if self._obs is None:
            raise RuntimeError(f"{self.env_id}: call reset(seed) before expert_action()")
        if self._done:
            raise RuntimeError(f"{self.env_id}: the episode is over; no expert action")
        if self._expert_cache is not None and self._expert_cache[0] == self._version:
            return self._expert_cache[1]
        if not hasattr(self._env, "instrs"):
            raise NotImplementedError(
                f"{self.env_id} has no BabyAI instruction; the BabyAI bot expert only covers "
                f"BabyAI-* levels"
            )
        gone = self.vanished_mission_objects()
        if gone:  # the bot would keep trying forever (e.g. "pick up" where a box was toggled away)
            self._drop_bot()
            raise ExpertError(
                f"mission impossible on {self.env_id} seed {self._seed} at step {self.steps_taken}: "
                f"mission object(s) destroyed: {', '.join(gone)}",
                kind="impossible",
            )
        idx = None
        if self._bot is not None and self._bot_version == self._version - 1:
            if self.omniscient_expert:  # a door it opened adds a region to its map
                self._bot.vis_mask |= self.region_mask()
            try:
                idx = int(self._bot.replan())
            except Exception:  # noqa: BLE001 - a stale plan: replan from scratch below
                idx = None
            if idx is not None and idx not in _IDX_TO_ACTION:
                idx = None
        if idx is None:
            try:
                self._bot = self._fresh_bot()
                idx = int(self._bot.replan())
            except Exception as e:  # noqa: BLE001
                self._drop_bot()
                gone = self.vanished_mission_objects()
                why = f" (mission object(s) destroyed: {', '.join(gone)})" if gone else ""
                raise ExpertError(
                    f"BabyAI bot failed on {self.env_id} seed {self._seed} at step "
                    f"{self.steps_taken}{why}: {type(e).__name__}: {e}",
                    kind="impossible" if gone else "planner",
                ) from e
            if idx not in _IDX_TO_ACTION:
                self._drop_bot()
                raise ExpertError(
                    f"BabyAI bot answered 'done' on {self.env_id} seed {self._seed} at step "
                    f"{self.steps_taken} although the mission is not complete"
                )
        self._bot_version = self._version
        self._bot_action = idx
        action = _IDX_TO_ACTION[idx]
        self._expert_cache = (self._version, action)
        return action

    def expert_advice(self, student_action: str | None) -> Advice:
        try:
            expert = self.expert_action()
        except (ExpertError, NotImplementedError) as e:
            return Advice(
                suggested_action=None,
                diagnosis="",
                error_type="unknown",
                ok=False,
                failure_reason=str(e),
                meta={"teacher": "babyai_bot"},
            )
        return Advice(
            suggested_action=expert,
            diagnosis=self.diagnose(student_action),
            error_type=classify_error(student_action, expert),
            meta={"teacher": "babyai_bot", "step": self.steps_taken},
        )

    def vanished_mission_objects(self) -> list[str]:
        """Mission objects no longer in the world (a box toggled open disappears), e.g.
        ``["the purple box"]``; with one of them gone the mission may be impossible."""
        env = self._env
        instr = getattr(env, "instrs", None)
        gone = []
        for d in ("desc", "desc_move", "desc_fixed"):
            desc = getattr(instr, d, None)
            if desc is None or not desc.obj_set:
                continue
            present = False
            for obj in desc.obj_set:
                if obj is env.carrying:
                    present = True
                elif obj.cur_pos is not None:  # (a carried object's cur_pos is (-1, -1))
                    i, j = int(obj.cur_pos[0]), int(obj.cur_pos[1])
                    in_grid = 0 <= i < env.grid.width and 0 <= j < env.grid.height
                    present = present or (in_grid and env.grid.get(i, j) is obj)
            if not present:
                gone.append(f"the {desc.color + ' ' if desc.color else ''}{desc.type}")
        return gone

