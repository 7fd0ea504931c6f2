"""Student backends. Heavy/optional backends are imported lazily, only when selected.

``BACKENDS``: what each backend can do. ``hf`` scores valid actions and trains; ``openai`` only
generates text (``policies.base``) and cannot train, so a study, whose phases 1B, 2 and 5
train, refuses it (``check_trainable``, run when the DAG is built for a job that loads the local
model: common.smk ``get_student_model``); rule bench benches it."""

from __future__ import annotations

from pathlib import Path

from .base import GENERATE, SCORE, Context, GenerativePolicy, Policy, StudentPolicy

__all__ = ["BACKENDS", "Context", "GenerativePolicy", "Policy", "StudentPolicy", "check_trainable", "make_student"]

TRAIN = "train"
BACKENDS = {"hf": frozenset({SCORE, TRAIN}), "openai": frozenset({GENERATE})}  # vllm: planned
TRAINING_PHASES = "1B (micro-training), 2 (training) and 5 (selection)"


def check_trainable(student_cfg: dict) -> None:
    """A ValueError naming ``student.backend`` when the configured backend cannot train (the
    study's phases 1B, 2 and 5 fine-tune the student)."""
    backend = (student_cfg or {}).get("backend", "hf")
    if TRAIN not in BACKENDS.get(backend, frozenset({TRAIN})):
        raise ValueError(
            f"config key student.backend={backend!r} cannot train, and the study's phases "
            f"{TRAINING_PHASES} fine-tune the student: set student.backend: hf with "
            "student.model_path (a local HF model directory, or null for the embedded student)"
        )


def make_student(student_cfg: dict, model_dir: str | None, adapter_dir: str | None = None,
                 merge_adapter: bool = False, *, env_id: str) -> StudentPolicy:
    """The student policy named by config key ``student.backend``, prompted with ``env_id``'s
    family's system prompt: ``hf`` loads ``model_dir`` (with the LoRA adapter in
    ``adapter_dir``, folded into the weights if ``merge_adapter``: faster, for a policy that
    never changes adapter); ``openai`` talks to ``student.openai.base_url`` (no model directory,
    no adapter)."""
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
    if backend == "openai":
        from .openai_student import OpenAIStudent

        if adapter_dir is not None:
            raise ValueError(f"student.backend: openai cannot load the adapter {adapter_dir} (a trained "
                             "adapter needs student.backend: hf)")  # fmt: skip
        return OpenAIStudent(student_cfg["openai"], system_prompt=system_prompt(env_id))
    if backend == "vllm":
        raise NotImplementedError(
            f"student.backend={backend!r} is planned but not implemented yet; use 'hf' "
            "(transformers on CPU or GPU, with a local model directory) or 'openai'"
        )
    raise ValueError(f"unknown student.backend {backend!r}; expected 'hf', 'vllm' or 'openai'")
