"""Admission control for submissions: under overload every client gets an answer within a second (issue 19).

Without it a flood (50,000 reports in 5 minutes) queued requests inside the gateway: each waited for a worker slot
behind all the others, and clients went a minute without an answer, or without even a connection. Now a submission
whose body has arrived is admitted only while the backlog is under two bounds, and is otherwise answered at once
with `503 overloaded` and `Retry-After`:

- **in flight** (`ADMISSION_MAX_IN_FLIGHT`, default 32 per intake process): admitted submissions waiting for a worker
  slot or being handled. One intake process works through 25-30 reports a second when every one has a photo, 50-70
  with the flood's 20 % photos and 150-300 without (docs/performance.md), so the 32 admitted are answered within
  about half a second at the flood's mix, about a second if all carry photos;
- **waiting** (`ADMISSION_MAX_WAIT_SECONDS`, default 0.5): `ADMISSION_MIN_LATE` (default 4) admitted submissions
  have each waited this long without an answer. The in-flight count alone answers within a second only while the
  process has its core: on a machine whose CPU is shared (a flood's other work, a noisy neighbour) 32 submissions
  took 3 s (docs/performance.md). A bound in time holds whatever the CPU: while that many admitted ones are late,
  new ones are refused at once, so the admitted ones are answered within about this bound plus their own handling.
  It takes several late ones, not just the oldest, because one submission stuck on a slow store call (the driver's
  socket timeout is 20 s) says nothing about the CPU, and would otherwise turn every citizen away until it ends;
- **outbox** (`ADMISSION_MAX_OUTBOX_PENDING`, default 10,000): accepted reports whose messages the broker has not
  confirmed yet (`jaklapor_outbox_pending_reports`, sampled every `ADMISSION_SAMPLE_SECONDS`, default 1 s, in the
  background: no request pays for the count). A broker outage still degrades intake rather than stopping it, until
  this many reports wait; past it the store would only grow a backlog no OPD sees.

0 turns a bound off. A refused submission stored nothing: the client retries after `Retry-After`
(`ADMISSION_RETRY_AFTER_SECONDS`, default 2) with the same `Idempotency-Key` and gets exactly one report. Refusals
are counted in `jaklapor_intake_admission_refused_total{reason}` (alert `SubmissionsShedUnderLoad`); the in-flight
count is `jaklapor_intake_submissions_in_flight`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import eventlet
from werkzeug.wrappers import Request

from jaklapor.config import setting
from jaklapor.web import ApiEndpoint, ApiError
from services.intake import metrics

log = logging.getLogger(__name__)

IN_FLIGHT = "in_flight"
WAITING = "waiting"
OUTBOX = "outbox"


@dataclass(frozen=True)
class AdmissionPolicy:
    max_in_flight: int = 32
    max_wait_seconds: float = 0.5
    min_late: int = 4
    max_outbox_pending: int = 10_000
    retry_after_seconds: int = 2
    sample_seconds: float = 1.0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> AdmissionPolicy:
        policy = cls(
            max_in_flight=int(setting(config, "ADMISSION_MAX_IN_FLIGHT", cls.max_in_flight)),
            max_wait_seconds=float(setting(config, "ADMISSION_MAX_WAIT_SECONDS", cls.max_wait_seconds)),
            min_late=int(setting(config, "ADMISSION_MIN_LATE", cls.min_late)),
            max_outbox_pending=int(setting(config, "ADMISSION_MAX_OUTBOX_PENDING", cls.max_outbox_pending)),
            retry_after_seconds=int(setting(config, "ADMISSION_RETRY_AFTER_SECONDS", cls.retry_after_seconds)),
            sample_seconds=float(setting(config, "ADMISSION_SAMPLE_SECONDS", cls.sample_seconds)),
        )
        if min(policy.max_in_flight, policy.max_outbox_pending, policy.max_wait_seconds) < 0:
            raise ValueError(
                "ADMISSION_MAX_IN_FLIGHT, ADMISSION_MAX_WAIT_SECONDS and ADMISSION_MAX_OUTBOX_PENDING must be 0 (off) "
                "or more"
            )
        if policy.retry_after_seconds < 1 or policy.sample_seconds <= 0 or policy.min_late < 1:
            raise ValueError(
                "ADMISSION_RETRY_AFTER_SECONDS and ADMISSION_MIN_LATE must be 1 or more, "
                "ADMISSION_SAMPLE_SECONDS above 0"
            )
        return policy


class Admission:
    """The counting, without HTTP or threads: `enter(key)` admits (None) or names the bound that is passed;
    `leave(key)` when an admitted submission was answered. `clock` is monotonic seconds (a test's own clock)."""

    def __init__(self, policy: AdmissionPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self._admitted: dict[object, float] = {}  # when each admitted submission entered, oldest first
        self.outbox_pending = 0  # the last sample; refreshed by `sample`

    @property
    def in_flight(self) -> int:
        return len(self._admitted)

    def oldest_wait(self, rank: int = 1) -> float:
        """Seconds the `rank`-th oldest admitted submission has waited so far (0 with fewer in flight)."""
        entered = next(itertools.islice(self._admitted.values(), rank - 1, None), None)
        return 0.0 if entered is None else max(0.0, self.clock() - entered)

    def enter(self, key: object) -> str | None:
        policy = self.policy
        if policy.max_in_flight and self.in_flight >= policy.max_in_flight:
            return IN_FLIGHT
        if policy.max_wait_seconds and self.oldest_wait(policy.min_late) > policy.max_wait_seconds:
            return WAITING  # the admitted are in entry order: the min_late-th oldest is late, so are those before it
        if policy.max_outbox_pending and self.outbox_pending >= policy.max_outbox_pending:
            return OUTBOX
        self._admitted[key] = self.clock()
        return None

    def leave(self, key: object) -> None:
        self._admitted.pop(key, None)

    def sample(self, count_outbox: Callable[[], int]) -> None:
        try:
            self.outbox_pending = count_outbox()
        except Exception as exc:  # the store is away: keep the last sample; submissions fail on their own (503)
            log.warning("admission: outbox count failed: %r", exc)

    def refusal(self, reason: str) -> ApiError:
        retry = self.policy.retry_after_seconds
        what = {
            IN_FLIGHT: f"{self.in_flight} submissions are already being handled by this server",
            WAITING: (
                f"{self.policy.min_late} or more submissions already admitted have waited over "
                f"{self.policy.max_wait_seconds:g} s for an answer (the oldest {self.oldest_wait():.1f} s)"
            ),
            OUTBOX: f"{self.outbox_pending} accepted reports are waiting to be forwarded",
        }[reason]
        error = ApiError(
            503,
            "overloaded",
            f"too many reports at once: {what}; nothing was stored, retry in {retry} s "
            "(with the same Idempotency-Key, so the report is created once)",
            reason=reason,
            retry_after_seconds=retry,
        )
        error.headers["Retry-After"] = str(retry)
        return error


class AdmittedApiEndpoint(ApiEndpoint):
    """An `@api` endpoint behind admission control (one `Admission` per endpoint and process)."""

    def setup(self) -> None:
        super().setup()
        self.admission = Admission(AdmissionPolicy.from_config(self.container.config))
        metrics.SUBMISSIONS_IN_FLIGHT.set_function(lambda: self.admission.in_flight)

    def start(self) -> None:
        super().start()
        if self.admission.policy.max_outbox_pending:
            self.container.spawn_managed_thread(self._sample_outbox, identifier="admission_outbox_sampler")

    def _sample_outbox(self) -> None:
        while not self.stopping:  # the store's client closes when the container stops
            relay = _outbox_relay(self.container)
            if relay is not None and getattr(relay, "repository", None) is not None:
                self.admission.sample(relay.repository.pending_outbox_count)
            eventlet.sleep(self.admission.policy.sample_seconds)

    def refuse_now(self, request: Request) -> ApiError | None:
        reason = self.admission.enter(request)
        if reason is None:
            return None
        metrics.ADMISSION_REFUSED.labels(reason).inc()
        metrics.SUBMISSIONS_REFUSED.labels("overloaded").inc()
        return self.admission.refusal(reason)

    def request_done(self, request: Request) -> None:
        self.admission.leave(request)


def _outbox_relay(container: Any) -> Any:
    from services.intake.dependencies import OutboxRelay  # the dependency that owns the outbox

    return next((d for d in container.dependencies if isinstance(d, OutboxRelay)), None)


admitted_api = AdmittedApiEndpoint.decorator
