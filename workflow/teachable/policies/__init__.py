"""Student backends, every one behind the student protocol (``policies.base.StudentPolicy``).
Heavy/optional backends are imported lazily, only when selected.

``BACKENDS``: what each backend needs and can do before one is built (the DAG is checked with
it). ``hf`` (transformers) and ``vllm`` (vLLM's engine) score valid actions on a local model
directory (``LOCAL``), which trains in transformers (``TRAIN``: ``make_trainable``); ``openai``
only generates text (``policies.base.GenerativePolicy``) and cannot train, so a study, whose
phases 1B, 2 and 5 train, refuses it (``check_trainable``, run when the DAG is built for a job
that loads the local model: common.smk ``get_student_model``); rule bench benches it.
``BACKEND_SECTIONS``: the config sections of one backend (``student.openai``, ``student.vllm``),
read only when it is the backend. On a free-form family (``registry.free_form``) every backend
generates its actions (``policies.base`` module docstring): hf and vllm with ``student.generate``,
openai with ``student.openai.max_tokens`` at least ``FREE_FORM_MIN_TOKENS``."""

from __future__ import annotations


from .base import Context, GenerativePolicy, Policy, StudentPolicy

__all__ = ["BACKENDS", "BACKEND_SECTIONS", "Context", "GenerativePolicy", "Policy", "StudentPolicy", "check_trainable",
           "loads_model_dir", "make_student", "make_trainable", "trainer_policy"]  # fmt: skip

TRAIN = "train"  # LoRA-trains in transformers (phases 1B, 2 and 5)
LOCAL = "local"  # loads a local HF model directory (student.model_path, a job's --model)
BACKENDS = {"hf": frozenset({LOCAL, TRAIN}), "vllm": frozenset({LOCAL, TRAIN}), "openai": frozenset()}
BACKEND_SECTIONS = ("openai", "vllm")
FREE_FORM_MIN_TOKENS = 1024  # student.openai.max_tokens at least, on a free-form family (programs, JSON answers)
TRAINING_PHASES = "1B (micro-training), 2 (training) and 5 (selection)"


def loads_model_dir(backend: str) -> bool:
    """Whether config key ``student.backend``'s value ``backend`` loads a local model directory."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown student.backend {backend!r}; expected one of {sorted(BACKENDS)}")
    return LOCAL in BACKENDS[backend]


def check_trainable(student_cfg: dict) -> None:
    """A ValueError naming ``student.backend`` when the configured backend cannot train (the
    study's phases 1B, 2 and 5 fine-tune the student)."""
    backend = (student_cfg or {}).get("backend", "hf")
    if TRAIN not in BACKENDS.get(backend, frozenset({TRAIN})):
        raise ValueError(
            f"config key student.backend={backend!r} cannot train, and the study's phases "
            f"{TRAINING_PHASES} fine-tune the student: set student.backend: hf with "
            "student.model_path (a local HF model directory, or null for the embedded student), or "
            "student.backend: vllm on a GPU"
        )


def make_student(student_cfg: dict, model_dir: str | None, adapter_dir: str | None = None,
                 merge_adapter: bool = False, *, env_id: str) -> StudentPolicy:
    """The student policy named by config key ``student.backend``, prompted with ``env_id``'s
    family's system prompt: ``hf`` loads ``model_dir`` in transformers (with the LoRA adapter in
    ``adapter_dir``, folded into the weights if ``merge_adapter``: faster, for a policy that
    never changes adapter); ``vllm`` starts a vLLM engine on ``model_dir`` (the adapter served
    through LoRARequest); ``openai`` talks to ``student.openai.base_url`` (no model directory,
    no adapter)."""
    from ..envs.registry import free_form, system_prompt

    from ..config import section

    student_cfg = section("student", student_cfg)  # defaults from the config schema
    backend = student_cfg["backend"]
    if backend == "hf":
        return make_trainable(student_cfg, model_dir, adapter_dir, merge_adapter, env_id=env_id)
    if backend == "vllm":
        from .vllm_student import VLLMPolicy

        return VLLMPolicy(model_dir, student_cfg["vllm"], adapter_dir=adapter_dir, dtype=student_cfg["dtype"],
                          system_prompt=system_prompt(env_id), generate=student_cfg["generate"],
                          generates=free_form(env_id))  # fmt: skip
    if backend == "openai":
        from .openai_student import OpenAIStudent

        if adapter_dir is not None:
            raise ValueError(f"student.backend: openai cannot load the adapter {adapter_dir} (a trained "
                             "adapter needs student.backend: hf or vllm)")  # fmt: skip
        max_tokens = int(student_cfg["openai"]["max_tokens"])
        if free_form(env_id) and max_tokens < FREE_FORM_MIN_TOKENS:
            raise ValueError(f"config key student.openai.max_tokens={max_tokens} is too few for {env_id}, whose "
                             f"actions are programs and JSON answers: set it to at least {FREE_FORM_MIN_TOKENS} "
                             "(answers cut short are counted: usage truncations)")  # fmt: skip
        return OpenAIStudent(student_cfg["openai"], system_prompt=system_prompt(env_id))
    raise ValueError(f"unknown student.backend {backend!r}; expected 'hf', 'vllm' or 'openai'")


def make_trainable(student_cfg: dict, model_dir: str | None, adapter_dir: str | None = None,
                   merge_adapter: bool = False, *, env_id: str):
    """The transformers policy (``HFPolicy``) on ``model_dir`` that LoRA training holds, for a
    trainable backend (``hf``: it is also the student that acts; ``vllm``: the engine serves the
    adapters it trains). ``device``, ``dtype`` and ``batch_size`` from ``student``."""
    from ..envs.registry import free_form, system_prompt

    from ..config import section
    from .hf import HFPolicy

    student_cfg = section("student", student_cfg)
    check_trainable(student_cfg)
    return HFPolicy(
        model_dir,
        adapter_dir=adapter_dir,
        device=student_cfg["device"],
        dtype=student_cfg["dtype"],
        batch_size=student_cfg["batch_size"],
        merge_adapter=merge_adapter,
        system_prompt=system_prompt(env_id),
        generate=student_cfg["generate"],
        generates=free_form(env_id) and student_cfg["backend"] == "hf",
    )


def trainer_policy(policy: StudentPolicy, student_cfg: dict, model_dir: str, *, env_id: str):
    """The transformers policy that trains adapters for ``policy``: ``policy`` itself when it is
    one (the hf backend: one model in memory), else a new one on ``model_dir``."""
    from .hf import HFPolicy

    return policy if isinstance(policy, HFPolicy) else make_trainable(student_cfg, model_dir, env_id=env_id)
