"""The OPD API's entrypoints, inherited by IntakeService: who is calling (an agency's key, or a workbench session
with its CSRF token), the session itself, the work list with its counts, one report with what the caller may do
with it, the hand-over directory, status changes, and the live stream of the list.

Thin as service.py's: the rules are in sessions.py, worklist.py, domain.py and report.py; the stores in
dependencies.py. Every other OPD's report answers 404, whichever way the caller signed in.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

from eventlet.queue import Empty
from werkzeug.wrappers import Request, Response

from jaklapor.batches import broadcast_batch_consumer
from jaklapor.events import ReportRouted, ReportUnroutable, parse_event
from jaklapor.live import TooManyStreams
from jaklapor.opd_keys import verify_key
from jaklapor.vocabulary import DISPOSISI, SELESAI, iso, utcnow
from jaklapor.web import ApiError, api, json_response, read_fields
from services.intake import metrics
from services.intake.dependencies import VersionConflict
from services.intake.domain import TransitionRequest, allowed_transitions, disposisi_target, public_view, work_item
from services.intake.nearby import DEFAULT_RADIUS_M, MAX_CANDIDATES, bounding_box, nearby_summaries
from services.intake.opd_auth import (
    cleared_session_cookie,
    csrf_failed,
    invalid_key,
    presented_key,
    session_cookie,
    session_ended,
    too_many_wrong_keys,
    unauthenticated,
)
from services.intake.ratelimit import client_address
from services.intake.report import Report, opd_ref
from services.intake.schemas import DirectoryQuery, SignInForm, TransitionForm, WorkListQuery, parse_form, parse_query
from services.intake.sessions import (
    SESSION_COOKIE,
    csrf_problem,
    is_alive,
    new_session,
    origin_problem,
    session_id_or_none,
    touched,
)
from services.intake.settings import IntakeSettings
from services.intake.uploads import delete_photos, store_new_photos
from services.intake.verification import (
    VERIFIER,
    VERIFIER_CODE,
    VerificationRefused,
    complete,
    evidence_checks,
    handed_over,
    is_pending,
    is_verifier,
    refuse_opd_action,
)
from services.intake.worklist import (
    LIST_CHANGING_EVENTS,
    decode_cursor,
    directory_entry,
    kelurahan_codes,
    list_changes,
    opds_concerned,
    page_of,
    parse_level,
    parse_statuses,
    search_directory,
    status_counts,
)

log = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}
STREAM_KEEPALIVE_SECONDS = 15.0
#: a routing result heard of on the broadcast queue may still be being stored by another replica: wake again then
ROUTING_SETTLE_SECONDS = 1.0


class OpdCaller:
    """An authenticated caller of the OPD API: its OPD, and its session when it came with the cookie."""

    def __init__(self, opd: Any, session: dict[str, Any] | None = None) -> None:
        self.opd = opd
        self.session = session


class OpdEndpoints:
    """Mixed into IntakeService, whose dependencies these are."""

    settings: IntakeSettings
    store: Any
    sessions: Any
    photos: Any
    photo_cleaner: Any
    relay: Any
    reference: Any
    key_throttle: Any
    opd_streams: Any

    # ---- who is calling --------------------------------------------------------------------------------------------

    def _client(self, request: Request) -> str:
        return client_address(
            request.remote_addr, request.headers.get("X-Forwarded-For"), self.settings.trusted_proxy_hops
        )

    def _opd_of_key(self, presented: str, request: Request) -> Any:
        """The OPD a key belongs to; wrong keys from one client are counted and, past a few, make it wait (429)."""
        client = self._client(request)
        wait = self.key_throttle.retry_after(client)
        if wait:
            raise too_many_wrong_keys(wait)
        opd_code = verify_key(self.settings.opd_key_secret, presented)
        opd = self._principal(opd_code) if opd_code else None
        if opd is None:
            self.key_throttle.failed(client)
            log.warning("wrong OPD key", extra={"client": client})
            raise invalid_key()
        self.key_throttle.succeeded(client)
        return opd

    def _check_csrf(self, request: Request, session: dict[str, Any]) -> None:
        """A change made with the session cookie carries the session's CSRF token and comes from our own origin."""
        problem = csrf_problem(
            request.method,
            session["csrf_token"],
            request.headers.get("X-CSRF-Token"),
            request.headers.get("Origin"),
            self.settings.public_origin,
        )
        if problem is not None:
            raise csrf_failed(problem)

    def _live_session(self, request: Request) -> tuple[str, dict[str, Any]] | None:
        """The session of the request's cookie, if it is alive (its idle expiry moved on); None without a cookie;
        401 for a cookie whose session ended."""
        token = request.cookies.get(SESSION_COOKIE)
        if token is None:
            return None
        session_id = session_id_or_none(token)
        session = self.sessions.by_id(session_id) if session_id else None
        now = utcnow()
        if session_id is None or session is None or not is_alive(session, now):
            raise session_ended(self.settings.secure_cookies)
        changes = touched(session, now, self.settings.session_policy())
        if changes is not None:
            self.sessions.touch(session_id, changes)
            session.update(changes)
        return session_id, session

    def _authenticate(self, request: Request) -> OpdCaller:
        """The caller: `Authorization: Bearer <key>` (agency systems) or the session cookie, whose requests that
        change something carry its CSRF token (403 csrf_failed otherwise)."""
        authorization = request.headers.get("Authorization")
        if authorization is not None:
            return OpdCaller(self._opd_of_key(presented_key(authorization), request))
        found = self._live_session(request)
        if found is None:
            raise unauthenticated()
        _session_id, session = found
        self._check_csrf(request, session)
        opd = self._principal(session["opd_code"])
        if opd is None:  # the OPD left the directory since sign-in
            raise session_ended(self.settings.secure_cookies)
        return OpdCaller(opd, session)

    def _principal(self, code: str) -> Any:
        """Who a key or a session stands for: an OPD of the directory, or the city's verifier."""
        return VERIFIER if code == VERIFIER_CODE else self.reference.directory.get(code)

    def _opd_change(self, report: Report, decision: Any, evidence: list[Any], captures: list[Any], opd: Any) -> Any:
        """A decided transition of one report as it is stored (a report's own, or an incident member's): the OPD's
        selesai goes through verification, a hand-over leaves the previous OPD's rework behind."""
        if decision.to_status == SELESAI:
            return self._completion(report, decision, evidence, captures, opd)
        change = report.transition(decision, [photo["photo_id"] for photo in evidence], utcnow())
        return handed_over(change, report.document) if decision.forwards else change

    def _completion(self, report: Report, decision: Any, evidence: list[Any], captures: list[Any], opd: Any) -> Any:
        """The OPD's selesai: pending verification, or closed at once where its category is exempt."""
        checks = evidence_checks(report.document, evidence, captures)
        required = self.settings.verification_policy().required(report.document["category"])
        return complete(report, decision, evidence, checks, required, opd.name, utcnow())

    @staticmethod
    def _not_assigned(report_id: str, opd: Any) -> ApiError:
        # the same answer for a report that does not exist: an OPD learns nothing about others' reports
        return ApiError(404, "report_not_found", f"no report {report_id} is assigned to {opd.code}")

    # ---- sessions (the workbench) ----------------------------------------------------------------------------------

    def _session_answer(self, opd: Any, session: dict[str, Any]) -> dict[str, Any]:
        return {
            "opd": opd_ref(opd),
            "csrf_token": session["csrf_token"],
            "expires_at": iso(session["expires_at"]),
            "absolute_expires_at": iso(session["absolute_expires_at"]),
        }

    @api("POST", "/api/v1/opd/session")
    def sign_in(self, request: Request) -> Response:
        """Exchange the agency's key (JSON or form field `key`) for a session cookie and its CSRF token."""
        problem = origin_problem(request.headers.get("Origin"), self.settings.public_origin)
        if problem is not None:
            raise csrf_failed(problem)
        fields, _files = read_fields(request)
        form: SignInForm = parse_form(SignInForm, fields)
        opd = self._opd_of_key(form.key, request)
        now = utcnow()
        new = new_session(opd.code, now, self.settings.session_policy())
        self.sessions.insert(new.document)
        lifetime = int((new.document["absolute_expires_at"] - now).total_seconds())
        response = json_response(self._session_answer(opd, new.document), status=201, headers=NO_STORE)
        response.headers["Set-Cookie"] = session_cookie(new.token, lifetime, self.settings.secure_cookies)
        log.info("workbench session opened", extra={"opd": opd.code})
        return response

    @api("GET", "/api/v1/opd/session")
    def current_session(self, request: Request) -> Response:
        """The session of the cookie (its OPD, CSRF token and expiry), or 401."""
        found = self._live_session(request)
        if found is None:
            raise unauthenticated()
        _session_id, session = found
        opd = self._principal(session["opd_code"])
        if opd is None:
            raise session_ended(self.settings.secure_cookies)
        return json_response(self._session_answer(opd, session), headers=NO_STORE)

    @api("DELETE", "/api/v1/opd/session")
    def sign_out(self, request: Request) -> Response:
        """End the cookie's session (with its CSRF token); the browser forgets the cookie. Idempotent."""
        secure = self.settings.secure_cookies
        try:
            found = self._live_session(request)
        except ApiError:
            found = None  # already ended: signing out again is done
        if found is not None:
            session_id, session = found
            self._check_csrf(request, session)
            self.sessions.delete(session_id)
            self.opd_streams.wake(session["opd_code"])  # its streams here end now; elsewhere at their next look
            log.info("workbench session closed", extra={"opd": session["opd_code"]})
        return Response(status=204, headers={**NO_STORE, "Set-Cookie": cleared_session_cookie(secure)})

    # ---- reading ---------------------------------------------------------------------------------------------------

    @api("GET", "/api/v1/opd/me")
    def whoami(self, request: Request) -> Response:
        opd = self._authenticate(request).opd
        return json_response({"opd": opd_ref(opd)})

    def _counts(self, opd_code: str) -> dict[str, Any]:
        return {
            "by_status": status_counts(self.store.counts_by_status(opd_code)),
            "overdue": self.store.overdue_count_of(opd_code),
        }

    @api("GET", "/api/v1/opd/reports")
    def work_list(self, request: Request) -> Response:
        """The reports this OPD holds now, overdue first, then by deadline, then the oldest; a page at a time."""
        opd = self._authenticate(request).opd
        query: WorkListQuery = parse_query(WorkListQuery, request.args.lists())
        statuses = parse_statuses(query.status)
        category = self._work_category(query.category)
        areas = kelurahan_codes(self.reference.directory.areas, query.kecamatan, query.kelurahan)
        after = decode_cursor(query.cursor) if query.cursor else None
        rows = self.store.held_sort_rows(opd.code, statuses, category, areas)
        page = page_of(rows, after, query.limit)
        found = {report["_id"]: report for report in self.store.work_items(page.report_ids)}
        base_url = self.settings.public_url
        items = [work_item(found[report_id], base_url) for report_id in page.report_ids if report_id in found]
        body = {
            "opd": opd_ref(opd),
            "reports": items,
            "next_cursor": page.next_cursor,
            "counts": self._counts(opd.code),
            "filters": {
                "status": list(statuses),
                "category": category,
                "kecamatan": query.kecamatan,
                "kelurahan": query.kelurahan,
                "limit": query.limit,
            },
        }
        return json_response(body, headers=NO_STORE)

    def _work_category(self, text: str | None) -> str | None:
        if text is None:
            return None
        category = self.reference.categories.get(text)
        if category is None:
            raise ApiError(
                400,
                "invalid_query",
                f"unknown category {text[:100]!r}; GET /api/v1/categories lists the codes",
                field="category",
            )
        return str(category.code)

    @api("GET", "/api/v1/opd/reports/counts")
    def work_counts(self, request: Request) -> Response:
        """How many of this OPD's reports are in each status, and how many are overdue."""
        opd = self._authenticate(request).opd
        return json_response({"opd": opd_ref(opd), **self._counts(opd.code)}, headers=NO_STORE)

    def _opd_view(self, report: dict[str, Any], opd: Any) -> dict[str, Any]:
        """The report as the OPD holding it sees it: the public view, its hop, what the OPD may do with it now
        (and the Suku Dinas a disposisi goes to), and open reports of its category nearby (possible duplicates)."""
        base_url = self.settings.public_url
        directory = self.reference.directory
        view = public_view(report, base_url)
        state = Report(report, base_url).state
        allowed = [] if is_pending(report) else allowed_transitions(state, opd, directory)
        target = disposisi_target(state.kota_slug, opd, directory) if DISPOSISI in allowed else None
        location = report["location"]
        box = bounding_box(location["lat"], location["lon"], DEFAULT_RADIUS_M)
        candidates = self.store.open_reports_in(box, report["category"], MAX_CANDIDATES)
        view.update(
            hop=report.get("hop", 0),
            allowed_transitions=allowed,
            disposisi_target=opd_ref(target) if target is not None else None,
            nearby=nearby_summaries(
                candidates, location["lat"], location["lon"], DEFAULT_RADIUS_M, base_url, exclude=report["_id"]
            ),
        )
        return view

    @api("GET", "/api/v1/opd/reports/<report_id>")
    def opd_get_report(self, request: Request, report_id: str) -> Response:
        opd = self._authenticate(request).opd
        report = self.store.by_id(report_id)
        if report is None or (report.get("assigned_opd") or {}).get("code") != opd.code:
            raise self._not_assigned(report_id, opd)
        return json_response(self._opd_view(report, opd), headers=NO_STORE)

    @api("GET", "/api/v1/opd/directory")
    def opd_directory(self, request: Request) -> Response:
        """OPDs by words of their name or code (any case, accents or not), for a koordinasi hand-over."""
        self._authenticate(request)
        query: DirectoryQuery = parse_query(DirectoryQuery, request.args.lists())
        directory = self.reference.directory
        level = parse_level(query.level, sorted({opd.level for opd in directory.all()}))
        found = search_directory(directory.all(), query.q, level, query.limit)
        return json_response(
            {"opds": [directory_entry(opd) for opd in found]}, headers={"Cache-Control": "private, max-age=300"}
        )

    # ---- acting ----------------------------------------------------------------------------------------------------

    @api("POST", "/api/v1/opd/reports/<report_id>/transitions")
    def transition(self, request: Request, report_id: str) -> Response:
        opd = self._authenticate(request).opd
        if is_verifier(opd):
            raise VerificationRefused("verifier_not_an_opd", "the verifier approves or refuses completions only")
        fields, evidence_parts = read_fields(request, "photo", max_files=1)
        form: TransitionForm = parse_form(TransitionForm, fields)
        wanted = TransitionRequest(
            status=form.status.lower(),
            note=form.note,
            target_opd=form.target_opd or None,
            reason=form.reason or None,
            has_evidence=bool(evidence_parts),
        )
        for _attempt in range(3):
            stored = self.store.by_id(report_id)
            if stored is None:
                raise self._not_assigned(report_id, opd)
            report = Report(stored, self.settings.public_url)
            decision = report.decide_transition(opd, wanted, self.reference.directory)  # or TransitionRefused
            refuse_opd_action(stored)  # the verifier holds its completion
            captures: list[Any] = []  # where and when the evidence was taken: for its check, never stored
            evidence = store_new_photos(evidence_parts, self.photo_cleaner, self.photos, captures)
            try:
                updated = self.store.save(report, self._opd_change(report, decision, evidence, captures, opd))
            except VersionConflict:
                delete_photos(self.photos, evidence)
                continue
            self.relay.publish_soon(report_id)
            self._wake_lists([opd.code, decision.target_opd.code if decision.target_opd is not None else ""])
            metrics.TRANSITIONS.labels(decision.to_status).inc()
            log.info(
                "report status changed",
                extra={"report_id": report_id, "status": decision.to_status, "actor_opd": opd.code},
            )
            return json_response(self._opd_view(updated, opd))
        raise ApiError(409, "concurrent_update", "the report changed while this request was handled; retry")

    # ---- the live work list ----------------------------------------------------------------------------------------

    def _wake_lists(self, opd_codes: Iterable[str]) -> None:
        """The lists of these OPDs changed here: their streams in this process look again now."""
        self.opd_streams.wake_all(code for code in opd_codes if code)

    @broadcast_batch_consumer("intake.opd-lists", LIST_CHANGING_EVENTS)
    def wake_opd_streams(self, bodies: list[dict[str, Any]]) -> None:
        """Every change, whichever replica made it, wakes the streams of the OPDs it concerns in this process."""
        triage = self.reference.directory.triage.code
        concerned: set[str] = set()
        routed: set[str] = set()
        for body in bodies:
            try:
                event = parse_event(body)
            except ValueError:
                continue  # not an event this version knows: nothing to wake
            opds = opds_concerned(event, triage)
            concerned |= opds
            if isinstance(event, ReportRouted | ReportUnroutable):
                routed |= opds
        self._wake_lists(concerned)
        if routed:
            # another replica may still be storing the routing result it applies
            self.opd_streams.wake_later(routed, ROUTING_SETTLE_SECONDS)

    @api("GET", "/api/v1/opd/stream")
    def opd_stream(self, request: Request) -> Response:
        """Server-Sent Events as reports arrive in this OPD's list, change, or leave it."""
        caller = self._authenticate(request)
        opd = caller.opd
        limit = self.opd_streams.max_per_key
        if limit and self.opd_streams.streams(opd.code) >= limit:
            error = ApiError(
                429, "too_many_streams", f"{opd.code} already has {limit} live streams open here; close one"
            )
            error.headers["Retry-After"] = "10"
            raise error
        session_id = caller.session["_id"] if caller.session is not None else None
        request.environ["eventlet.minimum_write_chunk_size"] = 0  # every frame leaves at once
        return Response(
            self._list_frames(opd, session_id),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    def _list_frames(self, opd: Any, session_id: str | None) -> Iterator[bytes]:
        store, sessions, hub, settings = self.store, self.sessions, self.opd_streams, self.settings
        try:
            wakeups = hub.subscribe(opd.code)  # before the first reading: a change after it wakes the stream
        except TooManyStreams:
            yield _frame("error", {"code": "too_many_streams"})
            return
        try:
            held = store.held_versions(opd.code)
            yield b"retry: 3000\n\n"
            yield _frame("ready", {"opd": opd_ref(opd), "held": len(held), "counts": self._counts(opd.code)})
            started = last_sent = time.monotonic()
            while True:
                try:
                    wakeups.get(timeout=settings.opd_stream_poll_seconds)
                except Empty:
                    pass
                if session_id is not None and not is_alive(sessions.by_id(session_id), utcnow()):
                    yield _frame("signed_out", {"message": "the session has ended; sign in again"})
                    return
                if time.monotonic() - started > settings.opd_stream_max_seconds:
                    return  # the client reconnects (and authenticates again)
                now_held = store.held_versions(opd.code)
                changes = list_changes(held, now_held)
                held = now_held
                if changes:
                    yield from self._change_frames(changes)
                    yield _frame("counts", self._counts(opd.code))
                    last_sent = time.monotonic()
                elif time.monotonic() - last_sent >= STREAM_KEEPALIVE_SECONDS:
                    yield b": keep-alive\n\n"
                    last_sent = time.monotonic()
        finally:
            hub.unsubscribe(opd.code, wakeups)

    def _change_frames(self, changes: list[Any]) -> Iterator[bytes]:
        base_url = self.settings.public_url
        present = [c.report_id for c in changes if c.change != "removed"]
        items = {report["_id"]: work_item(report, base_url) for report in self.store.work_items(present)}
        gone = self.store.statuses_of([c.report_id for c in changes if c.change == "removed"])
        for change in changes:
            item = items.get(change.report_id)
            data: dict[str, Any] = {"report_id": change.report_id, "change": change.change}
            if item is not None:
                data.update(status=item["status"], report=item)
            else:
                data["status"] = gone.get(change.report_id)
            yield _frame("report", data)


def _frame(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
