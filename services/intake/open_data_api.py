"""The open-data exports over HTTP (services/intake/open_data.py): `GET /api/v1/open-data/reports.csv` and
`.geojson`, streamed: the answer is a generator reading the store through a cursor in batches, so neither the
gateway nor the client waits for (or holds) the whole export. Mixed into IntakeService."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from werkzeug.wrappers import Request, Response

from jaklapor.vocabulary import utcnow
from jaklapor.web import ApiError, api
from services.intake.open_data import LICENCE, csv_chunks, export_filter, geojson_chunks, public_rows
from services.intake.public_reports import mongo_filter, stream_in_id_order

log = logging.getLogger(__name__)

EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "geojson": "application/geo+json"}


class OpenDataEndpoints:
    """The exports (mixed into IntakeService, which provides the store, reference data and settings)."""

    settings: Any
    store: Any
    reference: Any

    @api("GET", "/api/v1/open-data/reports.<kind>")
    def open_data_reports(self, request: Request, kind: str) -> Response:
        if kind not in EXPORT_TYPES:
            raise ApiError(404, "not_found", f"no export .{kind}: reports.csv or reports.geojson")
        categories = self.reference.categories
        wanted = export_filter(request.args.to_dict(flat=False), categories)
        reports = stream_in_id_order(self.store.reports, mongo_filter(wanted, categories))
        rows = public_rows(reports, categories, self.settings.public_url)
        chunks = csv_chunks(rows) if kind == "csv" else geojson_chunks(rows, utcnow())
        return Response(
            _logged(chunks, kind),
            content_type=EXPORT_TYPES[kind],
            direct_passthrough=True,
            headers={
                "Content-Disposition": f'attachment; filename="jaklapor-reports.{kind}"',
                "Link": f'<{LICENCE["url"]}>; rel="license"',
                "Cache-Control": "public, max-age=300",
                "Access-Control-Allow-Origin": "*",
                "X-Content-Type-Options": "nosniff",
            },
        )


def _logged(chunks: Iterator[bytes], kind: str) -> Iterator[bytes]:
    """The chunks; a failure once the answer has started can only cut it short: it is logged so it is seen."""
    try:
        yield from chunks
    except Exception as exc:
        log.error("open-data export (%s) cut short: %r", kind, exc)
        raise
