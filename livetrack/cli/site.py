"""``livetrack site`` and ``livetrack site-key``: race day laid out as a site box at the finish
and a public server on the internet, one log between them (see docs/race-day.md)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def add_parsers(sub: Any, tick: Any) -> None:
    p = sub.add_parser(
        "site",
        help="serve the event at the finish and push its log to the public server",
        description="A complete livetrack on the finish area's network (decoder readers, its "
        "own log, timer console, marshals, big screen) that keeps working with the uplink "
        "down, and pushes its log to the public server (serve --site-keys) whenever it can.",
    )
    p.add_argument("--event", required=True, help="EVENT.toml")
    p.add_argument("--participants", help="participants CSV")
    p.add_argument("--db", default="site.db", help="the site's SQLite event log")
    p.add_argument("--upstream", required=True, help="the public server's URL (https://…)")
    p.add_argument(
        "--token",
        default=os.environ.get("LIVETRACK_SITE_TOKEN", ""),
        help="the site token (from `livetrack site-key new` at the public end; default "
        "$LIVETRACK_SITE_TOKEN)",
    )
    p.add_argument("--ca", help="a CA certificate to trust for the upstream's TLS (tls internal)")
    p.add_argument("--host", default="0.0.0.0", help="address for the finish area's network")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--tick", type=tick, default=0.25, metavar="SECONDS")
    p.set_defaults(func=cmd_site)

    p = sub.add_parser("site-key", help="create or revoke the token a site's link uses")
    p.add_argument("action", choices=["new", "revoke"])
    p.add_argument("--keys", required=True, help="the public server's site keys file")
    p.add_argument("--label", default="site", help="a note kept beside the hash")
    p.add_argument("--token", help="the token to revoke")
    p.set_defaults(func=cmd_site_key)


def cmd_site(args: argparse.Namespace) -> int:
    from livetrack.cli.common import check_log, load_event, read_participants, serve_app
    from livetrack.config import Settings
    from livetrack.service.entries import EntriesFile
    from livetrack.service.linkwire import ws_url
    from livetrack.web.app import create_app

    if not args.token:
        raise SystemExit("livetrack site: --token (or $LIVETRACK_SITE_TOKEN) is required")
    try:
        ws_url(args.upstream)
    except ValueError as exc:
        raise SystemExit(f"livetrack site: {exc}") from None
    if args.ca and not Path(args.ca).is_file():
        raise SystemExit(f"livetrack site: no CA certificate at {args.ca!r}")
    event = load_event(args.event)
    entries = (
        EntriesFile(args.participants, read_participants(args.participants))
        if args.participants
        else None
    )
    check_log(args.db)
    settings = Settings(
        event=event,
        log_url=args.db,
        entries=entries,
        tick_s=args.tick,
        upstream=args.upstream,
        upstream_token=args.token,
        upstream_ca=args.ca,
    )
    serve_app(create_app(settings), args.host, args.port)
    return 0


def cmd_site_key(args: argparse.Namespace) -> int:
    from livetrack.web.auth import new_token, token_hash

    path = Path(args.keys)
    if args.action == "new":
        token = new_token()
        label = " ".join(str(args.label).split()) or "site"
        with path.open("a") as f:
            f.write(f"{token_hash(token)} {label}\n")
        print(token)
        note = f"(shown once: its hash is in {path}; give the token to the site box)"
        print(note, file=sys.stderr)
        return 0
    if not args.token:
        raise SystemExit("livetrack site-key revoke: --token is required")
    if not path.is_file():
        raise SystemExit(f"livetrack site-key: no keys file at {path}")
    digest = token_hash(args.token)
    lines = path.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if ln.split("#", 1)[0].strip().split(" ", 1)[0] != digest]
    if len(kept) == len(lines):
        raise SystemExit("livetrack site-key revoke: that token is not in the keys file")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(kept))
    tmp.replace(path)
    print("revoked")
    return 0
