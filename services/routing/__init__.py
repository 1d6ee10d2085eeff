"""Routing service: finds the kelurahan of a report and the OPD that handles it.

The rules live in `services.routing.domain` (where a report is and which OPD handles it) and
`services.routing.assignment` (what that decision becomes: the event, the OPD message, the deadline); neither does
I/O besides reading the reference data. The `route` CLI is `services.routing.cli`.
"""
