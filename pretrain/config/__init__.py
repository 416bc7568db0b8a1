"""The one typed config schema (`schema.py`) and its loading and validation (`loading.py`).

A run is `tubelet <stage> RECIPE key=value ...`; `load_config` returns a validated `RunConfig` or
raises `ConfigError` naming the key.
"""

from pretrain.config.distill_schema import DistillConfig
from pretrain.config.loading import (
    RECIPES_DIR,
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    list_recipes,
    load_config,
    resolve_recipe,
)
from pretrain.config.schema import (
    STAGES,
    ClusterConfig,
    DataConfig,
    FinetuneConfig,
    LoggingConfig,
    MaskConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    StrategyConfig,
    TrainerConfig,
)
from pretrain.errors import ConfigError  # `pretrain.config.ConfigError`, the schema's one error

__all__ = [
    "RECIPES_DIR",
    "STAGES",
    "ClusterConfig",
    "ConfigError",
    "DataConfig",
    "DistillConfig",
    "FinetuneConfig",
    "LoggingConfig",
    "MaskConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "StrategyConfig",
    "TrainerConfig",
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "list_recipes",
    "load_config",
    "resolve_recipe",
]
