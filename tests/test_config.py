"""The config schema: defaults fill in, bad values name the key."""
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from teachable.splits import check_disjoint, split_seeds

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")


def load(name="config/config.yaml"):
    return yaml.safe_load((ROOT / name).read_text())


def test_shipped_configs_are_valid():
    cfg = load()
    validate(cfg, SCHEMA)
    assert {"results_dir", "seed"} <= set(cfg) and cfg["env"]["id"].startswith("BabyAI-")
    check_disjoint(cfg["splits"])


def test_defaults_are_filled():
    cfg = load()
    del cfg["phase1"]["n_rollouts"]
    validate(cfg, SCHEMA)
    assert cfg["phase1"]["n_rollouts"] == 8


@pytest.mark.parametrize(
    "path,value,needle",
    [
        (("phase1", "n_rollouts"), 0, "n_rollouts"),
        (("env", "id"), "", "id"),
        (("teacher", "backend"), "gpt", "gpt"),
        (("phase1", "quadrants", "mode"), "median", "median"),
    ],
)
def test_bad_value_error_names_key_and_value(path, value, needle):
    cfg = load()
    d = cfg
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value
    with pytest.raises(Exception) as e:
        validate(cfg, SCHEMA)
    assert needle in str(e.value)


@pytest.mark.parametrize("env", [{"id": "Pong-v0"}, {"id": "CrafterReward-v2"}, {"id": "BabyAI-GoToLocl-v0"},
                                 {"id": "CrafterReward-v1", "goal": "collect_stones"},
                                 {"id": "BabyAI-GoToLocal-v0", "goal": "collect_stone"}])
def test_bad_env_is_named_by_the_registry(env):
    """The env id and the family's options are checked against the family registry (as the
    Snakefile does when it builds the DAG): the error names the bad id or key and value."""
    from teachable.envs.registry import check_env_id, env_options

    with pytest.raises(ValueError) as e:
        check_env_id(env["id"])
        env_options(env)
    assert (env.get("goal") or env["id"]) in str(e.value)


def test_crafter_goal_reaches_the_env():
    from teachable.envs.registry import make_env_from

    env = make_env_from({"id": "CrafterReward-v1", "max_steps": 30, "goal": "collect_wood"})
    assert env.goal == "collect_wood" and env.max_steps == 30


def test_unknown_key_is_rejected_by_name():
    cfg = load()
    cfg["phase1"]["n_rolouts"] = 4
    with pytest.raises(Exception, match="n_rolouts"):
        validate(cfg, SCHEMA)


def test_manual_quadrants_need_thresholds():
    cfg = load()
    cfg["phase1"]["quadrants"] = {"mode": "manual"}
    with pytest.raises(Exception, match="u_threshold"):
        validate(cfg, SCHEMA)


def test_overlapping_splits_are_rejected():
    splits = {"train": {"start": 0, "count": 100}, "eval": {"start": 50, "count": 10},
              "bench": {"start": 1000, "count": 5}}
    with pytest.raises(ValueError, match="overlap"):
        check_disjoint(splits)
    assert split_seeds(splits, "eval") == list(range(50, 60))


def test_demo_split_is_disjoint_from_the_study_splits():
    cfg = load()
    assert "demo" in cfg["splits"]
    bad = dict(cfg["splits"], demo={"start": cfg["splits"]["train"]["start"] + 3, "count": 10})
    with pytest.raises(ValueError, match="demo"):
        check_disjoint(bad)
