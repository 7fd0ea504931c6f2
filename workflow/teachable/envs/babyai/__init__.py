"""The MiniGrid/BabyAI family: levels as a ``TextEnv`` (the BALROG action set, BALROG-style
observation text), in modules along its seams: ``actions`` (names, parsing, vocabulary, error
types), ``env`` (the ``TextEnv``), ``expert`` (the privileged bot), ``diagnosis`` (the oracle's
hint), ``text`` (the observation text: the study's or BALROG's), ``levels`` (the family's own
level), ``metrics`` (success per mission kind).

- Actions: ``turn left``, ``turn right``, ``go forward``, ``pick up``, ``drop``, ``toggle`` (BALROG's;
  MiniGrid's ``done`` is not offered). ``step(INVALID_ACTION)`` runs MiniGrid's ``done`` action,
  which changes nothing in the world but still counts a step (and can truncate the episode);
  under ``env.protocol: balrog`` it goes forward, BALROG's rule (``env``).
- Levels: every BabyAI/MiniGrid id gymnasium knows, and ``BabyAI-MixedLocal-v0`` (``levels``),
  BALROG's level: five mission kinds, no distractors, the kind recorded per episode
  (``mission_kind``) and scored per kind (``metrics``).
- Success (the ONE definition): the mission is completed, i.e. the episode's reward is > 0.
- Expert: minigrid's ``BabyAIBot``. A bot is created on the current state and cached while the
  trajectory only advances by the bot's own actions; any other action, a reset or a restore drops
  it, and the next query plans afresh. It is privileged: its map (``vis_mask``) is the agent's
  whole region (``region_mask``: every cell reachable without passing a shut door, and the walls
  and doors around it), whatever the agent has seen, so its action is a function of the state.
  The bot's planner cannot path through shut doors and asserts a path to every object on its map,
  so objects behind shut doors stay off the map: the bot opens doors to explore, as it does on
  its own (a map of the whole level makes it fail at the first step of multi-room levels).
- Action vocabulary (``mentioned_actions``): every phrase the parser maps to an action (names,
  ``_ALIASES``, ``_MENTIONS`` patterns) with its inflections, found as whole words in any text.
  It is the one list the teacher rules use to decide that a diagnosis names or paraphrases an
  action (``teachers.base.validate_advice``), for the oracle and the API teacher alike.
- The oracle teacher (``expert_advice``): the expert's action, an error type comparing the
  student's action with it, and a diagnosis (``diagnose(student_action)``, written in
  ``diagnosis``) built from the state and the student's action only: it never asks the
  expert, never reads the bot's plan, and uses no action vocabulary (directions as clock
  positions, distances in cells, doors locked / shut / passable), so the hint cannot carry the
  expert's action by its wording.
"""

from ..base import ExpertError
from .actions import (
    ACTIONS,
    ERROR_TYPES,
    INTERACTIONS,
    MOVES,
    TURNS,
    classify_error,
    mentioned_actions,
    parse_action_text,
)


def __getattr__(name: str):
    if name == "BabyAITextEnv":  # imported on use: the registry loads ``family`` without minigrid
        from .env import BabyAITextEnv

        return BabyAITextEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ACTIONS",
    "INTERACTIONS",
    "MOVES",
    "TURNS",
    "ERROR_TYPES",
    "BabyAITextEnv",
    "ExpertError",
    "classify_error",
    "mentioned_actions",
    "parse_action_text",
]
