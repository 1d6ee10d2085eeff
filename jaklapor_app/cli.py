"""`jaklapor`: run the system, route a point offline, issue OPD keys, submit demo reports.

jaklapor run [--config FILE] [--services intake,routing,notify,stats]
jaklapor route --lat LAT --lon LON [--category NAME]
jaklapor demo [--url http://127.0.0.1:8000]
jaklapor opd-key CODE
jaklapor verifier-key
jaklapor gen-key
jaklapor reset [--config FILE]
jaklapor stats-rebuild [--config FILE] [--check]
"""

from __future__ import annotations

import sys

from jaklapor_app.system import DEMO_INTAKE_URL, DEMO_STATS_URL, SERVICES

#: the development tools (devtools/, the `jaklapor-devtools` distribution): the demo client and the local stores;
#: installed by `make setup`, never by the production image
DEVTOOLS_MODULES = ("devtools", "devtools.demo")
DEVTOOLS_MISSING = (
    "{what} is a development tool: it needs the jaklapor-devtools package, which this installation does not have. "
    "From a clone of the repository: `make setup` (or `pip install -e ./devtools`)."
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        # must happen before anything imports socket, threading or pymongo
        import eventlet

        eventlet.monkey_patch()
    import argparse

    parser = argparse.ArgumentParser(prog="jaklapor", description="JakLapor citizen-report backend")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="start services in one process (all four by default)")
    run.add_argument("--config", help="nameko config file (default: the packaged config.yaml)")
    run.add_argument("--services", default=",".join(SERVICES), help="comma-separated: intake,routing,notify,stats")
    run.add_argument("--no-s3-standin", action="store_true", help="never start the local S3 server (SeaweedFS)")

    reset = commands.add_parser(
        "reset", help="delete the local mode's stored reports and photos (the report numbering goes on)"
    )
    reset.add_argument("--config")

    route = commands.add_parser("route", help="where would a report at this point go? (offline)", add_help=False)
    route.add_argument("rest", nargs=argparse.REMAINDER)

    demo = commands.add_parser("demo", help="submit realistic sample reports and walk them through the statuses")
    demo.add_argument("--url", default=DEMO_INTAKE_URL, help="intake gateway")
    demo.add_argument("--stats-url", default=DEMO_STATS_URL)
    demo.add_argument("--config", help="config file (for the AMQP URI and the OPD key secret)")

    key = commands.add_parser("opd-key", help="print the API key of an OPD (from OPD_KEY_SECRET)")
    key.add_argument("opd_code")
    key.add_argument("--config")

    verifier = commands.add_parser(
        "verifier-key", help="print the API key of the city's verifier (Biro Pemerintahan), from OPD_KEY_SECRET"
    )
    verifier.add_argument("--config")

    commands.add_parser("gen-key", help="print a new Fernet key for CONTACT_KEY")

    verify = commands.add_parser("verify-webhook", help="check a webhook's signature (body on stdin)")
    verify.add_argument("--signature", required=True, help="the X-Jaklapor-Signature header value")
    verify.add_argument("--secret", help="the shared secret (default: $JAKLAPOR_WEBHOOK_SECRET)")
    verify.add_argument("--tolerance", type=int, default=300, help="seconds a signature stays valid (default 300)")
    commands.add_parser(
        "stats-rebuild", help="recompute the statistics from the report store (--check: compare)", add_help=False
    ).add_argument("rest", nargs=argparse.REMAINDER)

    if argv and argv[0] == "route":
        from services.routing.cli import route_command

        return route_command(argv[1:])
    if argv and argv[0] == "stats-rebuild":
        from services.stats.rebuild import rebuild_command

        return rebuild_command(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "run":
        from jaklapor_app.runner import run_services

        return run_services(args.config, args.services.split(","), standin=not args.no_s3_standin)
    if args.command == "demo":
        try:
            from devtools.demo import run_demo
        except ImportError as exc:
            if exc.name not in DEVTOOLS_MODULES:
                raise
            print(DEVTOOLS_MISSING.format(what="jaklapor demo"), file=sys.stderr)
            return 2
        return run_demo(args.url, args.stats_url, args.config)
    if args.command == "opd-key":
        from jaklapor.config import load_config
        from jaklapor.opd_keys import derive_key
        from jaklapor.reference import load_directory

        if load_directory().get(args.opd_code) is None:
            print(f"unknown OPD code {args.opd_code!r}", file=sys.stderr)
            return 2
        print(derive_key(load_config(args.config)["OPD_KEY_SECRET"], args.opd_code))
        return 0
    if args.command == "verifier-key":
        from jaklapor.config import load_config
        from jaklapor.opd_keys import VERIFIER_CODE, derive_key

        print(derive_key(load_config(args.config)["OPD_KEY_SECRET"], VERIFIER_CODE))
        return 0
    if args.command == "reset":
        from jaklapor.config import load_config, local_data_dir
        from jaklapor_app.local_stack import reset_local_data

        config = load_config(args.config)
        removed = reset_local_data(config)
        where = local_data_dir(config)
        print(f"removed {', '.join(map(str, removed))}" if removed else f"nothing to remove in {where}")
        return 0
    if args.command == "gen-key":
        from jaklapor.contacts import generate_key

        print(generate_key())
        return 0
    if args.command == "verify-webhook":
        import os

        from services.notify.signing import verify_signature

        secret = args.secret or os.environ.get("JAKLAPOR_WEBHOOK_SECRET", "")
        valid = bool(secret) and verify_signature(secret, args.signature, sys.stdin.buffer.read(), args.tolerance)
        print("valid" if valid else "invalid (wrong secret, changed body, or older than the tolerance)")
        return 0 if valid else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
