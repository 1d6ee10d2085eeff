"""A nameko timer whose interval comes from configuration (tests shorten it; production keeps the default)."""

from __future__ import annotations

from typing import Any

from nameko.timer import Timer

from jaklapor.config import setting


class ConfigurableTimer(Timer):
    def __init__(self, config_key: str, default_seconds: float, **kwargs: Any) -> None:
        super().__init__(interval=default_seconds, **kwargs)
        self.config_key = config_key
        self.default_seconds = default_seconds

    def setup(self) -> None:
        self.interval = float(setting(self.container.config, self.config_key, self.default_seconds))
        super().setup()

    def stop(self) -> None:
        # nameko's Timer.stop fires its stop event unconditionally: a second stop raised AssertionError ("re-send()
        # an already-triggered event"); stopping an already stopping timer only waits for it
        if not self.should_stop.ready():
            self.should_stop.send(True)
        if self.gt is not None:
            self.gt.wait()


timer_from_config = ConfigurableTimer.decorator
