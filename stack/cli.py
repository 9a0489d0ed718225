"""Command line of the local stack: `python -m stack <command>` (the Makefile's targets call it)."""
from __future__ import annotations

import argparse
import os
import shutil
import sys

from platform_common import config
from platform_common.errors import StackError
from stack import lifecycle, services, where
from stack.supervisor import Supervisor


def _services(settings, names):
    every = services.all_services(settings)
    return every, services.select(every, names)


def cmd_setup(args) -> int:
    from stack.setup import setup
    setup()
    return 0


def cmd_compose_check(args) -> int:
    from stack import compose
    version = compose.check()
    print(f"docker-compose.yml is valid (docker compose {version})")
    return 0


def cmd_up(args) -> int:
    settings = config.load()
    every, chosen = _services(settings, args.services)
    lifecycle.up(settings, chosen, every)
    # `up kafka` succeeds when kafka and what it needs are healthy, whatever else is stopped. Each was
    # healthy a moment ago: a probe that times out now, while the last services start, is retried
    healthy = lifecycle.status(settings, every, required=chosen, patience=60)
    if healthy and not args.services:
        where.show(settings)
    return 0 if healthy else 1


def cmd_down(args) -> int:
    settings = config.load()
    lifecycle.down(settings, services.all_services(settings))
    return 0


def cmd_status(args) -> int:
    settings = config.load()
    return 0 if lifecycle.status(settings, services.all_services(settings)) else 1


def cmd_logs(args) -> int:
    settings = config.load()
    sup = Supervisor(settings)
    names = [s.name for s in services.select(services.all_services(settings), args.services)] \
        if args.services else [s.name for s in services.all_services(settings)]
    paths = [str(sup.log_path(n)) for n in names if sup.log_path(n).exists()]
    if not paths:
        raise StackError(f"no logs yet under {sup.log_dir}; run `make up` first")
    tail = ["tail", "-n", str(args.lines), *(["-F"] if args.follow else []), *paths]
    os.execvp(tail[0], tail)


def cmd_where(args) -> int:
    where.show(config.load())
    return 0


def cmd_clean(args) -> int:
    settings = config.load()
    if Supervisor(settings).running():
        raise StackError("the stack is running; run `make down` before `make clean`")
    if not args.yes:
        raise StackError(f"this deletes all platform data in {settings.data_dir}; "
                         f"confirm with `make clean CONFIRM=yes`")
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    print(f"removed {settings.data_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup", help="install prerequisites, jars, binaries and .env").set_defaults(fn=cmd_setup)
    sub.add_parser("compose-check", help="validate docker-compose.yml (builds the compose plugin if docker lacks it)"
                   ).set_defaults(fn=cmd_compose_check)
    p = sub.add_parser("up", help="start services (all, or the named ones and their dependencies)")
    p.add_argument("services", nargs="*")
    p.set_defaults(fn=cmd_up)
    sub.add_parser("down", help="stop every service and the supervisor").set_defaults(fn=cmd_down)
    sub.add_parser("status", help="state, pid, port and health of each service").set_defaults(fn=cmd_status)
    p = sub.add_parser("logs", help="show service logs")
    p.add_argument("services", nargs="*")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("-n", "--lines", type=int, default=50)
    p.set_defaults(fn=cmd_logs)
    sub.add_parser("where", help="URLs and logins of the UIs and endpoints").set_defaults(fn=cmd_where)
    p = sub.add_parser("clean", help="delete the data folder (needs --yes)")
    p.add_argument("--yes", action="store_true")
    p.set_defaults(fn=cmd_clean)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
