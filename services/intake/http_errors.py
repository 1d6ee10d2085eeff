"""How intake answers its domain's errors over HTTP: the one table from their codes to HTTP statuses."""

from __future__ import annotations

from jaklapor.web import DomainErrors, DomainErrorTable
from services.intake.citizen_feedback import FeedbackRefused
from services.intake.domain import TransitionRefused
from services.intake.photos import TOO_LARGE, UNSUPPORTED_TYPE, PhotoRejected
from services.intake.verification import VerificationRefused
from services.intake.worklist import WorkListError

TRANSITION_REFUSALS = DomainErrorTable(
    TransitionRefused,
    {
        "invalid_status": 422,
        "not_routed_yet": 409,
        # an OPD asking about a report that is not its own learns nothing about it: the answer to a missing report
        "report_not_found": 404,
        "illegal_transition": 409,
        "invalid_note": 422,
        "missing_note": 422,
        "missing_target": 422,
        "unknown_opd": 422,
        "same_opd": 422,
        "unexpected_target": 422,
        "invalid_target": 422,
        "invalid_reason": 422,
        "missing_evidence": 422,
        "no_area": 409,
        "disposisi_not_allowed": 403,
        # duplicates (services/intake/duplicates.py)
        "primary_not_found": 422,
        "merge_into_itself": 422,
        "category_mismatch": 422,
        "already_merged": 409,
        "report_closed": 409,
        "has_merged_reports": 409,
        "primary_is_merged": 409,
        "primary_closed": 409,
        "not_merged": 409,
        "report_merged": 409,
    },
    # routing is still deciding: the OPD retries in a moment
    headers={"not_routed_yet": {"Retry-After": "1"}},
)

PHOTO_REJECTIONS = DomainErrorTable(
    PhotoRejected,
    {TOO_LARGE: 413, UNSUPPORTED_TYPE: 415},
    default_status=422,  # empty, too_many_pixels, corrupt
    code_prefix="photo_",
)

#: a work list's or the directory's query that cannot be answered (a filter naming nothing, a cursor not handed out)
WORK_LIST_REFUSALS = DomainErrorTable(WorkListError, {"invalid_query": 400})

#: the citizen's confirmation or reopen of a selesai report (services/intake/citizen_feedback.py)
FEEDBACK_REFUSALS = DomainErrorTable(
    FeedbackRefused,
    {
        "not_selesai": 409,
        "window_closed": 409,
        "already_confirmed": 409,
        "reopen_limit": 409,
        "report_merged": 409,
        "invalid_rating": 422,
        "missing_reason": 422,
        "invalid_reason": 422,
        "invalid_comment": 422,
    },
)

#: verified completion (services/intake/verification.py): the verifier's decisions, and who may make them
VERIFICATION_REFUSALS = DomainErrorTable(
    VerificationRefused,
    {
        "pending_verification": 409,
        "not_pending_verification": 409,
        "verifier_not_an_opd": 403,
        "not_a_verifier": 403,
        "missing_reason": 422,
        "invalid_reason": 422,
    },
)

INTAKE_ERRORS = DomainErrors(
    TRANSITION_REFUSALS, PHOTO_REJECTIONS, WORK_LIST_REFUSALS, VERIFICATION_REFUSALS, FEEDBACK_REFUSALS
)
