"""The Crafter family (crafter 1.8.3, the ``crafter`` extra): ``CrafterTextEnv`` and its parts.

- ``actions``: the 17 action names, the one alias table, the parser and the action vocabulary;
- ``rules``: crafter's recipes and the tech tree, read from crafter's own data;
- ``world``: a deterministic, pixel-free crafter world, its state key and the snapshot cache;
- ``text``: the BALROG-format observation text;
- ``navigation`` / ``scene`` / ``expert``: the privileged planner;
- ``diagnosis``: the oracle teacher's hint;
- ``env``: the ``TextEnv`` that ties them together;
- ``family`` / ``metrics``: what the registry lists (its options, columns, metrics, trace filter).
"""

from .actions import ACTIONS, mentioned_actions, parse_action_text


def __getattr__(name: str):
    if name == "CrafterTextEnv":  # imported on use: the registry loads ``family`` without crafter
        from .env import CrafterTextEnv

        return CrafterTextEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ACTIONS", "CrafterTextEnv", "mentioned_actions", "parse_action_text"]
