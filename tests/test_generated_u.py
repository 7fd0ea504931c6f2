"""U of a generate-only student (``teachable.policies.generated_u``): each valid action's
probability reconstructed from hand-built token logprob payloads, and the rounds of requests
behind one estimate (a scripted policy, no network)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from teachable.envs.registry import parse_action
from teachable.policies.base import Answer, Context, GenerativePolicy, TokenLogprob, entropy_of
from teachable.policies.generated_u import UEstimateError, answer_frame, estimate_u, from_logprobs, resolve

ENV = "BabyAI-GoToLocal-v0"
TURNS = ("turn left", "turn right", "go forward", "drop")


def tok(token: str, p: float, *alts: tuple[str, float]) -> TokenLogprob:
    """A generated token with probability ``p`` and its alternatives (text, probability); the
    sampled token is among its own top alternatives, as servers report it."""
    return TokenLogprob(token, math.log(p), ((token, math.log(p)), *((t, math.log(q)) for t, q in alts)))


def probs(res) -> dict[str, float]:
    return {a: round(float(p), 9) for a, p in zip(TURNS, res.probs)}


def test_a_shared_prefix_is_resolved_by_descending_the_sampled_path():
    """"turn" is consistent with two actions: its mass is split by the next token's alternatives
    (whitespace-leading " left" / " right"), while "go" names one action at once."""
    path = [tok("turn", 0.6, ("go", 0.3), ("I", 0.05)), tok(" left", 0.7, (" right", 0.25), (" around", 0.04))]
    res = resolve([path], TURNS)
    assert probs(res) == {"turn left": 0.42, "turn right": 0.15, "go forward": 0.3, "drop": 0.0}
    assert res.mass == pytest.approx(0.87)
    assert res.outside == pytest.approx(0.05 + 0.6 * 0.04) and res.undescended == 0
    p = np.array([0.42, 0.15, 0.3, 0.0]) / 0.87
    assert entropy_of(res.logprobs()) == pytest.approx(-(p[p > 0] * np.log(p[p > 0])).sum())


def test_leading_whitespace_and_case_do_not_matter_and_a_bare_whitespace_token_is_not_resolved():
    path = [tok(" Turn", 0.5, ("\n", 0.2), (" go", 0.2)), tok(" right", 0.9)]
    res = resolve([path], TURNS)
    assert probs(res) == {"turn left": 0.0, "turn right": 0.45, "go forward": 0.2, "drop": 0.0}
    assert res.undescended == pytest.approx(0.2)  # "\n" could still begin any action


def test_a_branch_never_descended_is_split_evenly_and_mass_outside_the_valid_actions_is_dropped():
    res = resolve([[tok("drop", 0.5, ("turn", 0.4), ("xyz", 0.1))]], TURNS)
    assert probs(res) == {"turn left": 0.0, "turn right": 0.0, "go forward": 0.0, "drop": 0.5}
    assert res.undescended == pytest.approx(0.4) and res.outside == pytest.approx(0.1)
    assert res.mass == pytest.approx(0.5)  # observed: the split is not counted
    assert res.split.tolist() == pytest.approx([0.2, 0.2, 0.0, 0.0]) and res.split_mass == pytest.approx(0.4)
    # U's distribution: the assigned and split probabilities, normalised over the valid actions
    assert np.exp(res.logprobs()).tolist() == pytest.approx([0.2 / 0.9, 0.2 / 0.9, 0, 0.5 / 0.9])


def test_the_split_keeps_an_undescended_shared_prefix_in_U():
    """Crafter-like: "Make " begins three actions and no answer went on with it. Without the
    split U would hold only the two "Move" actions; with it, each "Make" action has a third."""
    acts = ("Move West", "Move East", "Make Wood Pickaxe", "Make Stone Pickaxe", "Make Iron Pickaxe")
    res = resolve([[tok("Move West", 0.6, ("Move East", 0.3), ("Make ", 0.09))]], acts)
    assert res.probs.tolist() == pytest.approx([0.6, 0.3, 0, 0, 0]) and res.mass == pytest.approx(0.9)
    assert res.split.tolist() == pytest.approx([0, 0, 0.03, 0.03, 0.03])
    truth = np.array([0.6, 0.3, 0.03, 0.03, 0.03]) / 0.99
    assert entropy_of(res.logprobs()) == pytest.approx(float(-(truth * np.log(truth)).sum()))


def test_answers_are_merged_into_one_tree_without_counting_a_branch_twice():
    """The second answer descends the "turn" branch the first left; "drop" (the first answer's
    path, the second's alternative) counts once."""
    first = [tok("drop", 0.5, ("turn", 0.4), ("xyz", 0.1))]
    second = [tok("turn", 0.4, ("drop", 0.5)), tok(" left", 0.5, (" right", 0.5))]
    res = resolve([first, second], TURNS)
    assert probs(res) == {"turn left": 0.2, "turn right": 0.2, "go forward": 0.0, "drop": 0.5}
    assert res.undescended == 0 and res.mass == pytest.approx(0.9)


def test_an_answer_is_descended_to_its_end_so_its_action_gets_its_full_texts_probability():
    """"go" names one action, but the answer went on: "go forward" has 0.5 x 0.8, and "go back"
    is outside; an alternative no answer went on with ("turn" + " right") is assumed to complete."""
    path = [tok("turn", 0.3, ("go", 0.5)), tok(" right", 1.0)]
    other = [tok("go", 0.5, ("turn", 0.3)), tok(" forward", 0.8, (" back", 0.2))]
    res = resolve([path, other], TURNS)
    assert probs(res) == {"turn left": 0.0, "turn right": 0.3, "go forward": 0.4, "drop": 0.0}
    assert res.outside == pytest.approx(0.1)


def test_a_wrapped_answer_gives_the_frame_its_alternatives_are_read_in():
    text = json.dumps({"action": "drop"})
    parts = ['{"', "action", '":', ' "', "drop", '"}']
    assert "".join(parts) == text and answer_frame(text, "drop") == ('{"action": "', '"}')
    path = [tok(t, 1.0) for t in parts[:4]] + [tok("drop", 0.6, ("go", 0.3), ("turn", 0.1)), tok('"}', 1.0)]
    ctx = Context("go to the red ball", "You see a wall.", (), TURNS)
    est, res = from_logprobs([Answer(text, tuple(path))], lambda t: parse_action(ENV, t), ctx)
    assert probs(res) == {"turn left": 0.0, "turn right": 0.0, "go forward": 0.3, "drop": 0.6}
    assert res.undescended == pytest.approx(0.1) and est.mass == pytest.approx(0.9) and est.k == 1
    assert answer_frame("Go forward.", "go forward") == ("", ".") and answer_frame("forward", "go forward") is None


def test_an_answer_that_ends_where_a_longer_action_could_go_on_is_the_shorter_action():
    res = resolve([[tok("do", 0.7, ("x", 0.3))]], ("do", "do it"))
    assert res.probs.tolist() == pytest.approx([0.7, 0.0]) and res.outside == pytest.approx(0.3)


# ------------------------------------------------------------------------ rounds of requests


class Scripted(GenerativePolicy):
    """Answers U's requests from ``script`` (sample key -> Answer) and records every call."""

    name = "scripted"
    config_section = "student.fake"

    def __init__(self, script: dict[str, Answer], u_source: str, k: int = 4, min_mass: float = 0.9) -> None:
        self.script, self.u_source, self.k_samples, self.min_logprob_mass = script, u_source, k, min_mass
        self.top_logprobs = 5
        self.calls: list[list[tuple[str, int]]] = []

    def answer(self, requests):
        self.calls.append([(r.sample, r.top_logprobs) for r in requests])
        out = [self.script[r.sample] for r in requests]
        return [a if r.top_logprobs else Answer(a.text) for a, r in zip(out, requests)]


CTX = Context("go to the red ball", "You see a wall.", (), TURNS[:3])
GO = Answer("go forward", (tok("go", 0.5, ("turn", 0.45)), tok(" forward", 1.0)))
LEFT = Answer("turn left", (tok("turn", 0.45, ("go", 0.5)), tok(" left", 0.6, (" right", 0.4))))


def parse(text: str) -> str | None:
    return parse_action(ENV, text)


def test_answers_are_asked_until_their_logprobs_resolve_the_distribution():
    policy = Scripted({"u0": GO, "u1": LEFT, "u2": GO, "u3": GO}, "auto")
    (est,) = estimate_u(policy, [CTX], [parse])
    assert policy.calls == [[("u0", 5)], [("u1", 5)]]  # 0.5 resolved after one answer, 0.95 after two
    assert est.estimator == "logprobs" and est.k == 2 and est.mass == pytest.approx(0.95)
    p = np.array([0.27, 0.18, 0.5]) / 0.95
    assert est.U == pytest.approx(-(p * np.log(p)).sum())


def test_auto_takes_the_answers_asked_as_samples_where_logprobs_resolve_too_little():
    policy = Scripted({"u0": GO, "u1": GO, "u2": GO, "u3": LEFT}, "auto", min_mass=0.99)
    (est,) = estimate_u(policy, [CTX], [parse])
    assert policy.calls == [[("u0", 5)], [("u1", 5)], [("u2", 5), ("u3", 5)]]  # rounds of 1, 1, 2: no more
    assert est.estimator == "samples" and est.k == 4 and np.isnan(est.mass)
    assert np.exp(est.logprobs).tolist() == pytest.approx([0.25, 0, 0.75])


def test_auto_tops_up_with_samples_where_the_server_returns_no_logprobs():
    policy = Scripted({f"u{i}": Answer(a) for i, a in enumerate(["drop", "turn left", "go forward", "??"])}, "auto")
    (est,) = estimate_u(policy, [CTX], [parse])
    assert policy.calls == [[("u0", 5)], [("u1", 0), ("u2", 0), ("u3", 0)]]
    assert est.estimator == "samples" and est.k == 4 and est.n_invalid == 2  # "drop" is not valid here


def test_logprobs_mode_names_the_key_where_none_come_back_or_too_little_is_resolved():
    with pytest.raises(UEstimateError, match=r"student.fake.u_source is 'logprobs'.*returned no token logprobs"):
        estimate_u(Scripted({"u0": Answer("go forward")}, "logprobs"), [CTX], [parse])
    with pytest.raises(UEstimateError, match=r"account for only 0.950.*student.fake.min_logprob_mass=0.99: 0.500 "
                                             r"resolved, 0.450 on branches shared"):  # fmt: skip
        estimate_u(Scripted({f"u{i}": GO for i in range(4)}, "logprobs", min_mass=0.99), [CTX], [parse])


def test_after_k_answers_the_even_split_of_an_undescended_start_can_account_for_the_rest():
    """Four answers all "go forward": "turn" (0.45) is never descended. Resolved 0.5 is below
    0.9; with the split 0.95 is accounted for, so U comes from logprobs, the split recorded."""
    policy = Scripted({f"u{i}": GO for i in range(4)}, "auto")
    (est,) = estimate_u(policy, [CTX], [parse])
    assert len(sum(policy.calls, [])) == 4  # the rounds went on to k before splitting
    assert est.estimator == "logprobs" and est.mass == pytest.approx(0.5) and est.split == pytest.approx(0.45)
    assert np.exp(est.logprobs).tolist() == pytest.approx([0.225 / 0.95, 0.225 / 0.95, 0.5 / 0.95])


def test_samples_mode_asks_k_samples_without_logprobs():
    policy = Scripted({f"u{i}": GO for i in range(4)}, "samples")
    (est,) = estimate_u(policy, [CTX], [parse])
    assert policy.calls == [[(f"u{i}", 0) for i in range(4)]] and est.estimator == "samples" and est.U == 0
