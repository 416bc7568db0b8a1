"""Loading configs: recipe YAML + `key=value` overrides merged onto the schema with OmegaConf.

OmegaConf rejects wrong types; unknown keys are rejected here first with the closest valid names;
then the dataclasses are instantiated so every `__post_init__` check runs before any work starts.
Every failure is a `ConfigError` naming the key; the CLI prints it and exits with code 2.
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from pretrain.config.schema import RunConfig
from pretrain.errors import ConfigError

RECIPES_DIR = Path(__file__).parent.parent / "recipes"


def resolve_recipe(recipe: str, stage: str | None = None) -> Path:
    """A recipe by path (`my.yaml`) or shipped name (`pretrain/tiny`, or `tiny` with a stage)."""
    as_path = Path(recipe)
    if as_path.suffix in (".yaml", ".yml") and as_path.is_file():
        return as_path
    name = recipe.removesuffix(".yaml")
    candidates = [RECIPES_DIR / f"{name}.yaml"]
    if stage:
        candidates.insert(0, RECIPES_DIR / stage / f"{name}.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    shipped = list_recipes()
    by_basename = [n for n in shipped if n.rsplit("/", 1)[-1] == name]
    if len(by_basename) == 1:
        return RECIPES_DIR / f"{by_basename[0]}.yaml"
    close = difflib.get_close_matches(name, shipped, n=3, cutoff=0.4)
    hint = f"; did you mean {close}?" if close else f"; shipped recipes: {shipped}"
    raise ConfigError(f"recipe {recipe!r} is neither a YAML file nor a shipped recipe{hint}")


def list_recipes() -> list[str]:
    return sorted(str(p.relative_to(RECIPES_DIR).with_suffix("")) for p in RECIPES_DIR.rglob("*.yaml"))


def load_config(
    recipe: str | None = None, overrides: tuple[str, ...] | list[str] = (), stage: str | None = None
) -> RunConfig:
    """Recipe YAML + `key=value` overrides → validated RunConfig, or ConfigError naming the key."""
    schema = OmegaConf.structured(RunConfig)
    layers: list[DictConfig] = []
    if recipe is not None:
        layers.append(_load_yaml(resolve_recipe(recipe, stage)))
    layers.append(_parse_overrides(overrides))
    if stage is not None:
        layers.append(OmegaConf.create({"stage": stage}))
    merged = schema
    for layer in layers:
        _reject_unknown_keys(layer, RunConfig)
        try:
            merged = OmegaConf.merge(merged, layer)
        except OmegaConfBaseException as error:
            raise ConfigError(_describe_omegaconf_error(error)) from None
    try:
        return _run_config(merged)  # runs every __post_init__
    except ConfigError:
        raise
    except OmegaConfBaseException as error:
        raise ConfigError(_describe_omegaconf_error(error)) from None


def config_to_yaml(config: RunConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def config_to_dict(config: RunConfig) -> dict[str, Any]:
    values = OmegaConf.to_container(OmegaConf.structured(config))
    if not isinstance(values, dict):
        raise TypeError(f"a RunConfig became a {type(values).__name__}")
    return {str(key): value for key, value in values.items()}


def config_from_dict(values: dict) -> RunConfig:
    """Rebuild a saved config (e.g. from a checkpoint), with the same validation."""
    layer = OmegaConf.create(values)
    _reject_unknown_keys(layer, RunConfig)
    try:
        return _run_config(OmegaConf.merge(OmegaConf.structured(RunConfig), layer))
    except OmegaConfBaseException as error:
        raise ConfigError(_describe_omegaconf_error(error)) from None


def _run_config(merged: Any) -> RunConfig:
    """The dataclass object of a merged config (building it runs every `__post_init__`)."""
    config = OmegaConf.to_object(merged)
    if not isinstance(config, RunConfig):
        raise TypeError(f"the merged config became a {type(config).__name__}, not a RunConfig")
    return config


def _load_yaml(path: Path) -> DictConfig:
    try:
        loaded = OmegaConf.load(path)
    except yaml.MarkedYAMLError as error:
        raise ConfigError(describe_yaml_error(str(path), error)) from None
    except Exception as error:  # e.g. OmegaConf refusing a key; unreadable files
        raise ConfigError(f"cannot parse recipe {path}: {_first_line(error)}") from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"recipe {path} must be a mapping of sections, got {type(loaded).__name__}")
    return loaded


def _parse_overrides(overrides: tuple[str, ...] | list[str]) -> DictConfig:
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"override {item!r} must look like key=value (e.g. optim.base_lr=3e-4)")
    for item in overrides:  # one at a time, so the message names the bad one
        try:
            OmegaConf.from_dotlist([item])
        except (OmegaConfBaseException, yaml.YAMLError) as error:
            problem = getattr(error, "problem", None) or _first_line(error)
            raise ConfigError(f"override {item!r} cannot be parsed: {problem}") from None
    return OmegaConf.from_dotlist(list(overrides))


def describe_yaml_error(name: str, error: yaml.MarkedYAMLError) -> str:
    """One line, `file:line:column: ...` (PyYAML's own message spans four lines, 0-based marks)."""
    mark = error.problem_mark or error.context_mark
    where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
    problem = error.problem or error.context or "invalid YAML"
    context = ""
    started = error.context_mark
    if (
        error.context
        and error.problem
        and started
        and (started.line, started.column) != (mark.line, mark.column)
    ):
        context = f" ({error.context} that starts at line {started.line + 1}, column {started.column + 1})"
    return f"{where}: YAML syntax error: {problem}{context}"


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _reject_unknown_keys(layer: DictConfig, schema: type, prefix: str = "") -> None:
    """Unknown keys fail with the closest valid names, at any depth."""
    valid = {f.name: f.type for f in fields(schema)}
    hints = _field_types(schema)
    for key in layer:
        dotted = f"{prefix}{key!s}"
        if key not in valid:
            close = difflib.get_close_matches(str(key), list(valid), n=3, cutoff=0.5)
            suggestion = f"; did you mean {', '.join(prefix + c for c in close)}?" if close else ""
            raise ConfigError(
                f"unknown config key {dotted!r}{suggestion} (valid keys here: "
                f"{', '.join(prefix + v for v in valid)})"
            )
        sub_schema = hints[key]
        value = layer[key]
        if isinstance(sub_schema, type) and is_dataclass(sub_schema):
            if not isinstance(value, DictConfig):
                raise ConfigError(
                    f"config key {dotted!r} is a section; set its fields, e.g. {dotted}.<field>=..."
                )
            _reject_unknown_keys(value, sub_schema, prefix=f"{dotted}.")


def _field_types(schema: Any) -> dict[str, Any]:
    return typing.get_type_hints(schema)


def _describe_omegaconf_error(error: OmegaConfBaseException) -> str:
    key = getattr(error, "full_key", None) or getattr(error, "key", None)
    if isinstance(error, ValidationError):
        value = getattr(error, "value", None) if hasattr(error, "value") else None
        expected = _expected_type(str(key)) if key else None
        detail = f"expected {expected}" if expected else str(error).splitlines()[0]
        shown = f"={value!r}" if value is not None else ""
        return f"config key {key!r}{shown} has the wrong type: {detail}"
    if isinstance(error, ConfigKeyError):
        return f"unknown config key {key!r}"
    return f"config error at {key!r}: {str(error).splitlines()[0]}"


def _expected_type(dotted: str) -> str | None:
    schema: Any = RunConfig
    hint: Any = None
    for part in dotted.split("."):
        if not is_dataclass(schema):
            return None
        hints = _field_types(schema)
        if part not in hints:
            return None
        hint = hints[part]
        schema = hint
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
