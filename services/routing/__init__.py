"""Routing service: finds the kelurahan of a report and the OPD that handles it.

The rules live in `services.routing.domain` (no I/O besides reading the reference data); the
`route` CLI is `services.routing.cli`.
"""
