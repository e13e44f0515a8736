"""The ``livetrack`` command: its parser and :func:`main`; the commands live in
:mod:`~livetrack.cli.serving`, :mod:`~livetrack.cli.tools` and :mod:`~livetrack.cli.site`,
what they share in :mod:`~livetrack.cli.common`."""

from __future__ import annotations

import argparse
import logging
import os

from livetrack.cli import series as seriescli
from livetrack.cli import site as sitecli
from livetrack.cli.common import demo_event, load_event, tick_arg
from livetrack.cli.serving import cmd_check_event, cmd_demo, cmd_serve
from livetrack.cli.tools import cmd_import_reads, cmd_simulate, cmd_token
from livetrack.config import ConfigProblem
from livetrack.evaluation import replay as evaluate

__all__ = ["build_parser", "demo_event", "load_event", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livetrack", description="The ``livetrack`` command.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="serve the built-in Heaton Park event with a simulated race")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--speed", type=float, default=10.0, help="race time per real time")
    p.add_argument("--db", help="event log file (default: a new temporary file)")
    p.add_argument(
        "--site",
        action="store_true",
        help="race day's layout: this demo as the site box at the finish, and a public server "
        "(a second process, at --public-port) that follows it over the link",
    )
    p.add_argument("--public-port", type=int, default=0, help="with --site (default: --port + 1)")
    p.add_argument(
        "--readers",
        choices=["raceresult", "ctp01", "ipico", "mylaps"],
        help="rehearse timing hardware: a reader of this protocol per timing point, the races "
        "scheduled, and the `livetrack simulate` command that plays the decoders printed "
        "(instead of the race played over HTTP)",
    )
    p.add_argument(
        "--reader-port", type=int, default=0,
        help="first reader's port, then one per timing point (default: the protocol's own)",
    )  # fmt: skip
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="serve an event")
    p.add_argument("--event", required=True, help="EVENT.toml")
    p.add_argument("--participants", help="participants CSV")
    p.add_argument("--db", default="livetrack.db", help="SQLite event log (embedded default)")
    p.add_argument(
        "--redis",
        help="redis://host:port/db[?stream=NAME] — share one log between processes and hosts"
        " (stream default: livetrack:<event id>)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY", "1") or "1"),
        help="server processes sharing the port and the log (default: $WEB_CONCURRENCY or 1)",
    )
    p.add_argument(
        "--snapshot-every",
        type=int,
        default=250_000,
        metavar="N",
        help="save a snapshot of the fold every N records (also every 10 minutes and on exit)",
    )
    p.add_argument(
        "--no-snapshots",
        action="store_true",
        help="neither load nor save snapshots: replay the whole log at start",
    )
    p.add_argument(
        "--tick",
        type=tick_arg,
        default=0.25,
        metavar="SECONDS",
        help="how often changed regions are rendered and sent to pages (default 0.25)",
    )
    p.add_argument(
        "--site-keys",
        metavar="FILE",
        help="follow a site's log: accept the link of the site tokens whose hashes FILE lists "
        "(livetrack site-key new); writes made here are queued for the site",
    )
    p.add_argument(
        "--lif-dir",
        metavar="FOLDER",
        help="import the photo-finish system's .lif result files from FOLDER as they appear",
    )
    p.add_argument(
        "--push-in-process",
        action="store_true",
        help="send push alerts from this process (default: from a sender process of its own)",
    )
    p.set_defaults(func=cmd_serve)

    sitecli.add_parsers(sub, tick_arg)

    p = sub.add_parser("check-event", help="validate EVENT.toml (and participants) and exit")
    p.add_argument("event")
    p.add_argument("--participants")
    p.set_defaults(func=cmd_check_event)

    p = sub.add_parser("simulate", help="play a simulated race into a running server")
    p.add_argument("--url", help="the server's URL (HTTP simulation)")
    p.add_argument("--token", help="a reader token (HTTP simulation)")
    p.add_argument("--timer-token", help="a timer token, to fire the start guns")
    p.add_argument("--event", help="EVENT.toml (default: the built-in demo event)")
    p.add_argument("--participants")
    p.add_argument("--race", action="append", help="race id (repeatable; default: all)")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument(
        "--protocol",
        choices=["raceresult", "ctp01", "ipico", "mylaps"],
        help="play the race as timing decoders of this protocol instead of HTTP",
    )
    p.add_argument(
        "--port",
        type=int,
        default=3601,
        help="first decoder's port (one decoder per timing point, in the event's order: port, "
        "port+1, …; 0: a free port each)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address the decoders listen on")
    p.add_argument(
        "--connect", metavar="HOST", help="connect to listening readers on HOST instead of serving"
    )
    p.add_argument(
        "--point", action="append", help="timing point to play (repeatable; default: every point)"
    )
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("import-reads", help="import a decoder's saved reads (a USB-stick dump)")
    p.add_argument("file")
    p.add_argument(
        "--protocol", required=True, choices=["raceresult", "ctp01", "ipico", "mylaps", "generic"]
    )
    p.add_argument("--point", required=True, help="the timing point the reads were made at")
    p.add_argument("--reader", required=True, help="the reader id to store them under")
    p.add_argument("--event", required=True, help="EVENT.toml")
    p.add_argument("--date", help="YYYY-MM-DD for formats with times of day only")
    p.add_argument("--db", default="livetrack.db")
    p.add_argument("--redis")
    p.set_defaults(func=cmd_import_reads)

    p = sub.add_parser("token", help="create or revoke access tokens")
    p.add_argument("action", choices=["create", "revoke"])
    p.add_argument("--role", choices=["reader", "marshal", "timer"])
    p.add_argument(
        "--point",
        help="the checkpoint a marshal token may write (or the timing point a reader token "
        "may post for)",
    )
    p.add_argument(
        "--reader",
        action="append",
        metavar="ID",
        help="bind a reader token to this reader id (repeat for more); reads for other "
        "readers are refused",
    )
    p.add_argument("--label", help="who the token is for (shown in audit history)")
    p.add_argument("--token", help="the token to revoke")
    p.add_argument(
        "--link",
        action="store_true",
        help="print a sign-in link (token in the URL fragment) instead of the token",
    )
    p.add_argument("--base-url", help="the server's URL for --link (default 127.0.0.1:8000)")
    p.add_argument("--db", default="livetrack.db")
    p.add_argument("--redis", help="redis://… URL of the event's log (with ?stream= or --event)")
    p.add_argument("--event", help="EVENT.toml: with --redis, names the stream livetrack:<id>")
    p.set_defaults(func=cmd_token)

    seriescli.add_parser(sub)

    p = sub.add_parser(
        "evaluate-predictions",
        help="replay real results through the predictor",
        description=evaluate.DESCRIPTION,
    )
    evaluate.add_arguments(p)
    p.set_defaults(func=evaluate.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    if args.command == "token" and args.action == "create" and not args.role:
        raise SystemExit("livetrack token create: --role is required")
    if args.command == "token" and args.action == "revoke" and not args.token:
        raise SystemExit("livetrack token revoke: --token is required")
    try:
        result: int = args.func(args)
    except ConfigProblem as exc:
        raise SystemExit(f"livetrack: {exc}") from None
    return result
