"""Student backends. Heavy/optional backends are imported lazily, only when selected."""

from __future__ import annotations

from pathlib import Path

from .base import Context, Policy

__all__ = ["Context", "Policy", "make_student"]


def make_student(student_cfg: dict, model_dir: str, adapter_dir: str | None = None,
                 merge_adapter: bool = False, *, env_id: str) -> Policy:
    """The student policy named by config key ``student.backend``, loaded from ``model_dir``
    (with the LoRA adapter in ``adapter_dir``, folded into the weights if ``merge_adapter``:
    faster, for a policy that never changes adapter), prompted with ``env_id``'s family's
    system prompt."""
    from ..envs.registry import system_prompt

    from ..config import section

    student_cfg = section("student", student_cfg)  # defaults from the config schema
    backend = student_cfg["backend"]
    if backend == "hf":
        from .hf import HFPolicy

        if not Path(model_dir).is_dir():
            raise FileNotFoundError(
                f"student model directory {model_dir} does not exist (config key "
                "student.model_path, or the output of rule student_init)"
            )
        return HFPolicy(
            model_dir,
            adapter_dir=adapter_dir,
            device=student_cfg["device"],
            dtype=student_cfg["dtype"],
            batch_size=student_cfg["batch_size"],
            merge_adapter=merge_adapter,
            system_prompt=system_prompt(env_id),
        )
    if backend in ("vllm", "openai"):
        raise NotImplementedError(
            f"student.backend={backend!r} is planned but not implemented yet; use 'hf' "
            "(transformers on CPU or GPU, with a local model directory)"
        )
    raise ValueError(f"unknown student.backend {backend!r}; expected 'hf', 'vllm' or 'openai'")
