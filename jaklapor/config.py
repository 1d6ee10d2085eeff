"""Configuration: one nameko `config.yaml` with `${VAR:default}` placeholders, working defaults for a laptop."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG_PATH = Path(__file__).with_name("config.yaml")


def load_config(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Load a nameko config file, expanding `${VAR:default}` from the environment exactly as `nameko run` does."""
    from nameko.cli.main import setup_yaml_parser

    setup_yaml_parser()
    with open(path or os.environ.get("JAKLAPOR_CONFIG") or DEFAULT_CONFIG_PATH) as handle:
        return yaml.safe_load(handle)


def setting(config: dict[str, Any], key: str, default: Any = None) -> Any:
    """Read a config value, treating an empty string like a missing value."""
    value = config.get(key, default)
    return default if value in (None, "") else value


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}
