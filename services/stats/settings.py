"""Everything stats reads from the configuration, read once and validated when the service (or the rebuild command)
starts: a bad value stops it with a message naming the key."""

from __future__ import annotations

from pydantic import field_validator

from jaklapor.reference import load_categories
from jaklapor.settings import ServiceSettings
from services.stats.domain import DeadlineRule, deadline_rule
from services.stats.performance import DEFAULT_MIN_REPORTS


class StatsSettings(ServiceSettings):
    amqp_uri: str = "pyamqp://guest:guest@127.0.0.1:5672/"
    # the rebuild command's own connection to stats' store (the service's comes from jaklapor.mongo)
    mongo_uri: str = ""
    mongo_db_prefix: str = "jaklapor"
    # routing's deadline rule: this many seconds for every category, else each category's own target
    response_deadline_seconds: float | None = None
    # an agency is ranked in the public performance table only from this many reports
    stats_min_reports_for_rank: int = DEFAULT_MIN_REPORTS

    @field_validator("stats_min_reports_for_rank")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        return max(value, 1)

    def deadline_rule(self) -> DeadlineRule:
        """Routing's rule for a hop's response deadline, as configured."""
        return deadline_rule(
            {code: c.response_days for code, c in load_categories().items()}, self.response_deadline_seconds or None
        )
