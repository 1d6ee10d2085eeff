"""Configuration: one nameko `config.yaml` with `${VAR:default}` placeholders, working defaults for a laptop."""

from __future__ import annotations

import logging
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path(__file__).with_name("config.yaml")

# settings that protect something: their packaged defaults (config.yaml) are published with the code
SECRET_SETTINGS = ("OPD_KEY_SECRET", "TOKEN_SECRET", "CONTACT_KEY", "CITIZEN_WEBHOOK_SECRET", "S3_SECRET_KEY")
# the marker of a template value (deploy/kubernetes/secret.example.yaml, the packaged defaults) never replaced
PLACEHOLDER_MARK = "change-me"
LOCAL_MODE, DEPLOYMENT_MODE = "local", "deployment"


class InsecureConfiguration(Exception):
    """A service outside the local mode was given a development secret."""


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


def local_data_dir(config: dict[str, Any]) -> Path:
    """Where the local mode keeps what must outlive a run (LOCAL_DATA_DIR; default: the user's state directory)."""
    configured = setting(config, "LOCAL_DATA_DIR")
    if configured:
        return Path(str(configured)).expanduser()
    state_home = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state_home) / "jaklapor"


@cache
def development_secrets() -> dict[str, str]:
    """The packaged default of each secret setting, as config.yaml writes it: public, so never a real secret."""
    defaults = re.findall(r"^(\w+):.*\$\{\w+:([^}]*)\}", DEFAULT_CONFIG_PATH.read_text(), re.MULTILINE)
    return {key: default for key, default in defaults if key in SECRET_SETTINGS}


def run_mode(config: dict[str, Any]) -> str:
    """`local` or `deployment`, from JAKLAPOR_MODE; unset, `local` only while MONGO_URI is empty: nothing real is
    configured, so `jaklapor run` starts the local stores itself (and hands its services JAKLAPOR_MODE=local)."""
    mode = str(setting(config, "JAKLAPOR_MODE", "")).strip().lower()
    if mode in (LOCAL_MODE, DEPLOYMENT_MODE):
        return mode
    if mode:
        raise InsecureConfiguration(f"JAKLAPOR_MODE={mode!r}: use {LOCAL_MODE!r} or {DEPLOYMENT_MODE!r}")
    return DEPLOYMENT_MODE if str(setting(config, "MONGO_URI", "")).strip() else LOCAL_MODE


def development_secrets_in(config: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """Which of `keys` hold no real secret: empty, a packaged development value, or a template placeholder."""
    known = development_secrets()
    unsafe = []
    for key in keys:
        value = str(setting(config, key, "")).strip()
        if not value or value == known.get(key) or PLACEHOLDER_MARK in value.lower():
            unsafe.append(key)
    return unsafe


def refuse_development_secrets(config: dict[str, Any], service: str, keys: tuple[str, ...]) -> None:
    """Stop a service outside the local mode that would run with a public or empty secret (InsecureConfiguration)."""
    unsafe = development_secrets_in(config, keys)
    if not unsafe:
        return
    if run_mode(config) == LOCAL_MODE:
        log.warning("%s runs with development secrets (%s): local mode only", service, ", ".join(unsafe))
        return
    message = (
        f"{service} refuses to start: {', '.join(unsafe)} "
        f"{'is' if len(unsafe) == 1 else 'are'} empty, a published development value or a placeholder, so anyone "
        "could forge what they protect. Set real values (docker compose: scripts/generate-env writes a .env; "
        f"Kubernetes: the jaklapor-secrets Secret), or JAKLAPOR_MODE={LOCAL_MODE} on a development machine."
    )
    log.error(message)
    raise InsecureConfiguration(message)
