"""`jaklapor route`: where would a report at this point go?

    python -m services.routing.cli --lat -6.2443 --lon 106.8001 --category parkir-liar

Prints one JSON object on stdout: the area (`kelurahan`, `kecamatan`, `kota`, `code`, `match`,
`distance_m` for a snap) and the OPD (`opd`, `opd_name`, `routing_key`); without `--category`, the
kelurahan office. A point outside Jakarta prints
`{"outside": true, "reason": "outside_jakarta", "distance_m": ...}` with the triage desk's routing
key. Exit 0 for any decision; exit 2 with a JSON error on stderr for bad input (unknown category,
invalid coordinates).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from jaklapor.reference import load_directory
from services.routing.domain import (
    DEFAULT_SNAP_CAP_M,
    AreaMatch,
    Outside,
    Routed,
    default_area_index,
    route,
    routing_key_for,
    triage_routing_key,
)

EXIT_OK = 0
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaklapor route",
        description="Locate a point in Jakarta and show the OPD a report there is routed to.",
    )
    parser.add_argument("--lat", type=float, required=True, help="latitude, WGS84 (e.g. -6.2443)")
    parser.add_argument("--lon", type=float, required=True, help="longitude, WGS84 (e.g. 106.8001)")
    parser.add_argument(
        "--category",
        metavar="NAME_OR_CODE",
        help="report category, by code or name (e.g. parkir-liar, 'Parkir Liar'); "
        "without it, the kelurahan office is shown",
    )
    parser.add_argument(
        "--snap-cap-m",
        type=float,
        default=DEFAULT_SNAP_CAP_M,
        metavar="METRES",
        help=f"snap a point in no polygon to the nearest one within this distance (default {DEFAULT_SNAP_CAP_M:g})",
    )
    return parser


def _area_fields(area: AreaMatch) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "kelurahan": area.kelurahan.name,
        "kecamatan": area.kelurahan.kecamatan,
        "kota": area.kelurahan.kota,
        "code": area.kelurahan.code,
        "match": area.match,
    }
    if area.match == "snapped":
        fields["distance_m"] = area.distance_m
    return fields


def _fail(error: str, detail: str, field: str | None = None, **extra: Any) -> int:
    body: dict[str, Any] = {"error": error, "detail": detail}
    if field:
        body["field"] = field
    body.update(extra)
    print(json.dumps(body, ensure_ascii=False), file=sys.stderr)
    return EXIT_USAGE


def route_command(argv: list[str] | None = None) -> int:
    """Run `jaklapor route`; returns the exit code (0 decided, 2 bad input)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage error (or the help)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE

    directory = load_directory()
    category = None
    if args.category is not None:
        category = directory.category(args.category)
        if category is None:
            return _fail(
                "unknown_category",
                f"unknown category {args.category!r}",
                "category",
                known=list(directory.categories),
            )
    try:
        index = default_area_index(args.snap_cap_m)
        where = index.locate(args.lat, args.lon)
    except ValueError as exc:
        # the domain's messages start with the parameter's name ("lat must be ...")
        field = str(exc).split(" ", 1)[0]
        return _fail("invalid_input", str(exc), field if field in ("lat", "lon") else "snap_cap_m")

    out: dict[str, Any]
    if isinstance(where, Outside):
        triage = directory.triage
        out = {
            "outside": True,
            "reason": where.reason,
            "distance_m": where.distance_m,
            "nearest_kelurahan": where.nearest.name if where.nearest else None,
            "opd": triage.code,
            "opd_name": triage.name,
            "routing_key": triage_routing_key(where.reason, None, triage.code),
        }
        if category is not None:
            out["category"] = category.code
    elif category is None:
        office = directory.area_office(where.kelurahan, "kelurahan")
        assert office is not None  # generated for every kelurahan of the same boundary file
        out = {
            **_area_fields(where),
            "opd": office.code,
            "opd_name": office.name,
            "routing_key": routing_key_for(office, where),
        }
    else:
        decision = route(index, directory, args.lat, args.lon, category.code)
        out = {**_area_fields(where), "category": category.code}
        out.update(opd=decision.opd.code, opd_name=decision.opd.name)
        out["routing_key"] = decision.routing_key
        if not isinstance(decision, Routed):
            out.update(unroutable=True, reason=decision.reason, detail=decision.detail)
    print(json.dumps(out, ensure_ascii=False))
    return EXIT_OK


def main() -> None:
    sys.exit(route_command())


if __name__ == "__main__":
    main()
