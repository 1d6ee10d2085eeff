"""Typed settings: each service declares the configuration it reads once, with its defaults, as one pydantic model;
the values are read from the nameko config when the container starts and validated there, so a bad value stops the
service with a message naming the key instead of failing on the first request that reads it.

    class IntakeSettings(ServiceSettings):
        public_url: str = "http://127.0.0.1:8000"       # from PUBLIC_URL

    class IntakeService:
        settings = Settings(IntakeSettings)               # workers get the validated object

Field names are the config keys in lower case; an empty value (an unset `${VAR:}`) counts as missing, so the
field's default applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, Self, TypeVar

from nameko.extensions import DependencyProvider
from pydantic import BaseModel, ConfigDict, ValidationError

_settings_cache_key = "_jaklapor_settings"


class InvalidSettings(Exception):
    """A configuration value does not fit its setting; the message names the key and the problem."""


class ServiceSettings(BaseModel):
    """Base of a service's settings: immutable, keyed by the config's upper-case names, other keys ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", alias_generator=str.upper, populate_by_name=True)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """The settings in `config` (a nameko config dict); InvalidSettings naming every bad key."""
        present = {key: value for key, value in config.items() if value not in (None, "")}
        try:
            return cls.model_validate(present)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or '?'}: {error['msg']}" for error in exc.errors()
            )
            raise InvalidSettings(f"invalid configuration for {cls.__name__}: {problems}") from None

    @classmethod
    def of_container(cls, container: Any) -> Self:
        """The settings of a running container, read once per container and shared by its dependency providers."""
        cache: dict[type, ServiceSettings] = container.__dict__.setdefault(_settings_cache_key, {})
        if cls not in cache:
            cache[cls] = cls.from_config(container.config)
        return cache[cls]  # type: ignore[return-value]


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


class Settings(DependencyProvider, Generic[SettingsT]):
    """Hands each worker the service's validated settings; a bad value stops the container in `setup`."""

    def __init__(self, model: type[SettingsT]) -> None:
        self.model = model

    def setup(self) -> None:
        self.settings = self.model.of_container(self.container)

    def get_dependency(self, worker_ctx: Any) -> SettingsT:
        return self.settings
