"""Agency (OPD) performance that is hard to game (no I/O).

Each time a report reaches an OPD (a hop) counts once for that OPD, and what the OPD did with it is judged from the
report's facts: answered in time or not, handed away (koordinasi: a bounce), passed down to its own Suku Dinas
(disposisi: the normal channel, not a bounce), escalated because nobody answered, rejected, finished (selesai), or
finished and then reopened.

The composite score (0-100) of an agency:

    score = 100 × (0.45·completion + 0.30·on_time + 0.25·speed)
                 × (1 − 0.5·bounce_rate) × (1 − 0.5·rejection_rate) × (1 − 0.5·reopened_rate)
                 × (1 − 0.3·(1 − satisfaction))

    completion    = reports finished (selesai) here / reports it had to finish: received − disposisi − those still
                    open whose response deadline has not passed yet (an agency gets its deadline before it counts)
    on_time       = hops answered (any status change) by the response deadline / hops whose outcome is known
                    (answered, escalated, or still unanswered past the deadline)
    speed         = T / (T + R), R = the mean of the median and the p90 of its time from receiving a report to
                    selesai, T = the response target (3 days by default): 1 when instant, 0.5 at T, 0 with no selesai
    bounce_rate   = koordinasi hand-overs / received;  rejection_rate = ditolak / received
    reopened_rate = its closures (each selesai it set) that the citizen reopened / its closures
    satisfaction  = (mean of the citizens' 1-5 ratings of its closures − 1) / 4; the factor
                    (1 − 0.3·(1 − satisfaction)) is 1 without ratings (they are optional), 0.7 at a mean of 1
A rate with nothing to measure counts as 0 (no evidence, no credit); an agency whose reports are all still within
their deadline has no score yet. Why it resists gaming:
- bouncing or rejecting a report is a quick "response" (on_time) but never a completion, and each costs up to half
  the score on top: an agency that bounces everything scores at most 15;
- closing a report as selesai too early is caught when its citizen reopens it (within 14 days): the closure counts
  as reopened, the report is no longer complete until finished again, and its time to selesai runs to the final
  selesai; escalations count as missed deadlines;
- only the holder of a report's tracking token confirms or rates it, once, so an agency cannot rate itself up;
- speed uses the p90 as much as the median, so a few quick easy reports do not hide slow hard ones;
- an agency is ranked only with at least `min_reports` reports (STATS_MIN_REPORTS_FOR_RANK, default 20): one fast
  report does not top the table. The triage desk (it hands reports on by design) is never ranked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from jaklapor.vocabulary import DEFAULT_RESPONSE_DAYS, DISPOSISI, KOORDINASI
from services.stats.aggregates import HopOutcome, counted, deadline_share, duration_stats, hop_outcomes, ratio
from services.stats.domain import TRIAGE_OPD, DeadlineRule

DEFAULT_MIN_REPORTS = 20
# T of the speed term: the city's response target (3 days)
DEFAULT_TARGET = timedelta(days=DEFAULT_RESPONSE_DAYS)


@dataclass(frozen=True)
class Weights:
    completion: float = 0.45
    on_time: float = 0.30
    speed: float = 0.25
    bounce_penalty: float = 0.5
    rejection_penalty: float = 0.5
    reopened_penalty: float = 0.5
    rating_penalty: float = 0.3


WEIGHTS = Weights()
FORMULA = (
    "score = 100 × (0.45·completion + 0.30·on_time + 0.25·speed) × (1 − 0.5·bounce_rate) × (1 − 0.5·rejection_rate)"
    " × (1 − 0.5·reopened_rate) × (1 − 0.3·(1 − satisfaction)); speed = T / (T + R), R = mean of median and p90 time"
    " to selesai, T = response target; reopened_rate = closures reopened by the citizen / closures (selesai set);"
    " satisfaction = (mean citizen rating − 1) / 4, 1 without ratings"
)


def speed(resolution: Mapping[str, Any], target: timedelta) -> float:
    median, p90 = resolution.get("median_seconds"), resolution.get("p90_seconds")
    if median is None or p90 is None:
        return 0.0
    t = target.total_seconds()
    return t / (t + (median + p90) / 2) if t > 0 else 0.0


def composite_score(
    completion: float | None,
    on_time: float | None,
    speed_value: float,
    bounce_rate: float | None,
    rejection_rate: float | None,
    reopened_rate: float | None,
    weights: Weights = WEIGHTS,
    satisfaction: float | None = None,
) -> float:
    base = weights.completion * (completion or 0) + weights.on_time * (on_time or 0) + weights.speed * speed_value
    penalty = (
        (1 - weights.bounce_penalty * (bounce_rate or 0))
        * (1 - weights.rejection_penalty * (rejection_rate or 0))
        * (1 - weights.reopened_penalty * (reopened_rate or 0))
        # ratings are optional: no rating, no penalty (a rate with nothing to measure counts as 0)
        * (1 - weights.rating_penalty * (1 - (1 if satisfaction is None else satisfaction)))
    )
    return round(100 * base * penalty, 1)


def agency_row(opd: str, outcomes: list[HopOutcome], target: timedelta) -> dict[str, Any]:
    received = len(outcomes)
    disposisi = sum(1 for o in outcomes if o.ended == DISPOSISI)
    bounced = sum(1 for o in outcomes if o.ended == KOORDINASI)
    escalated = sum(1 for o in outcomes if o.ended == "escalation")
    rejected = sum(1 for o in outcomes if o.rejected)
    completed = sum(1 for o in outcomes if o.completed)
    # every selesai counts as a closure and every citizen reopen as a closure taken back: an OPD that closes the same
    # report three times, reopened twice, has 2 of 3 closures reopened
    closures = sum(o.closures for o in outcomes)
    reopened = sum(o.reopens for o in outcomes)
    confirmed = sum(1 for o in outcomes if o.confirmed)
    ratings = [o.rating for o in outcomes if o.rating is not None]
    rating_average = round(sum(ratings) / len(ratings), 2) if ratings else None
    satisfaction = (rating_average - 1) / 4 if rating_average is not None else None
    still_open = sum(1 for o in outcomes if o.open)
    not_due = sum(1 for o in outcomes if o.open and not o.due and o.ended is None)
    expected = received - disposisi - not_due
    response = duration_stats([o.response_seconds for o in outcomes if o.response_seconds is not None])
    resolution = duration_stats([o.resolution_seconds for o in outcomes if o.resolution_seconds is not None])
    deadlines = deadline_share(outcomes)
    rates = {
        "completion_rate": ratio(completed, expected),
        "bounce_rate": ratio(bounced, received),
        "rejection_rate": ratio(rejected, received),
        "reopened_rate": ratio(reopened, closures),
        "escalation_rate": ratio(escalated, received),
    }
    speed_value = speed(resolution, target)
    return {
        "opd": opd,
        "received": received,
        "completed": completed,
        "open": still_open,
        "koordinasi": bounced,
        "disposisi": disposisi,
        "rejected": rejected,
        "reopened": reopened,
        "escalations": escalated,
        "closures": closures,
        "confirmed": confirmed,
        "confirmation_rate": ratio(confirmed, completed),
        "ratings": len(ratings),
        "rating_average": rating_average,
        **rates,
        "response": response,
        "resolution": resolution,
        "within_deadline": deadlines,
        "speed": round(speed_value, 4),
        # nothing to judge yet (every report still within its deadline): no score rather than a zero
        "score": None
        if expected <= 0 and deadlines["decided"] == 0
        else composite_score(
            rates["completion_rate"],
            deadlines["share"],
            speed_value,
            rates["bounce_rate"],
            rates["rejection_rate"],
            rates["reopened_rate"],
            satisfaction=satisfaction,
        ),
    }


def agency_table(
    rows: Iterable[Mapping[str, Any]],
    now: datetime,
    *,
    min_reports: int = DEFAULT_MIN_REPORTS,
    deadline_of: DeadlineRule,
    target: timedelta = DEFAULT_TARGET,
    names: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Per OPD performance; agencies with at least `min_reports` reports ranked by score, the others listed apart."""
    by_opd: dict[str, list[HopOutcome]] = {}
    for row in counted(rows):
        for outcome in hop_outcomes(row, now, deadline_of):
            by_opd.setdefault(outcome.opd, []).append(outcome)
    ranked, unranked = [], []
    for opd, outcomes in by_opd.items():
        row = {**agency_row(opd, outcomes, target), **(names or {}).get(opd, {})}
        row["opd"] = opd
        if opd == TRIAGE_OPD or row.get("level") == "triage":
            unranked.append({**row, "unranked_reason": "triage desk: hands reports on by design"})
        elif row["received"] < min_reports:
            unranked.append({**row, "unranked_reason": f"fewer than {min_reports} reports"})
        else:
            ranked.append(row)
    ranked.sort(key=lambda r: (-(r["score"] if r["score"] is not None else -1), -r["received"], r["opd"]))
    for position, row in enumerate(ranked, start=1):
        row["rank"] = position
    unranked.sort(key=lambda r: (-r["received"], r["opd"]))
    return {
        "min_reports": min_reports,
        "target_hours": round(target.total_seconds() / 3600, 2),
        "formula": FORMULA,
        "weights": asdict(WEIGHTS),
        "ranked": ranked,
        "unranked": unranked,
    }


def one_agency(table: Mapping[str, Any], opd: str) -> dict[str, Any]:
    """The agency table narrowed to one OPD's row (ranked or not, its rank among all), also as `agency` (None while
    it has no report): what an agency's own screen shows, the same numbers as the public table."""
    ranked = [row for row in table["ranked"] if row["opd"] == opd]
    unranked = [row for row in table["unranked"] if row["opd"] == opd]
    return {**table, "ranked": ranked, "unranked": unranked, "agency": (ranked or unranked or [None])[0]}
