"""The config schema (``workflow/schemas/config.schema.yaml``) as the ONLY source of config
defaults and ranges. Snakemake validates the whole config against it (filling defaults) before
any rule runs; library code that is given a config section (a test, a script, the CLI) gets its
defaults and checks from the same file with ``section``, never from constants of its own.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    import yaml

    if not SCHEMA_PATH.is_file():
        raise FileNotFoundError(f"the config schema {SCHEMA_PATH} is missing (teachable runs from its repository)")
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref:
        node = {**_at(ref.removeprefix("#/").split("/")), **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _at(path: list[str]) -> dict[str, Any]:
    node = schema()
    for part in path:
        node = node[part]
    return node


def subschema(dotted: str) -> dict[str, Any]:
    """The schema of a config section, e.g. ``"phase4"`` or ``"teacher.openai"``."""
    node = schema()
    for part in dotted.split("."):
        props = _resolve(node).get("properties", {})
        if part not in props:
            raise KeyError(f"config section {dotted!r}: the schema has no key {part!r}")
        node = props[part]
    return _resolve(node)


def _fill(value: Any, node: dict[str, Any]) -> Any:
    node = _resolve(node)
    if node.get("type") != "object" or not isinstance(value, dict):
        return value
    for key, sub in node.get("properties", {}).items():
        sub = _resolve(sub)
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if key in value:
            value[key] = _fill(value[key], sub)
    return value


def section(dotted: str, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """The config section ``dotted`` (e.g. ``"phase4"``): ``given`` with the schema's defaults
    filled in, validated by the schema (jsonschema); an error names the key and the value."""
    import jsonschema

    node = subschema(dotted)
    value = _fill(copy.deepcopy(dict(given or {})), node)
    try:
        jsonschema.validate(value, {**node, "$defs": schema().get("$defs", {})})
    except jsonschema.ValidationError as e:
        where = ".".join([dotted, *map(str, e.absolute_path)])
        raise ValueError(f"config key {where}: {e.message}") from None
    return value


def read_config_files(paths) -> dict[str, Any]:
    """YAML config files merged as Snakemake's ``--configfile`` merges them: later files over
    earlier ones, nested sections key by key (``snakemake.utils.update_config``)."""
    from pathlib import Path

    import yaml
    from snakemake.utils import update_config

    cfg: dict[str, Any] = {}
    for f in paths:
        if not Path(f).is_file():
            raise FileNotFoundError(f"config file {f} does not exist")
        update_config(cfg, yaml.safe_load(Path(f).read_text()) or {})
    return cfg
