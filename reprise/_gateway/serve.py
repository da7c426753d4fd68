"""`reprise serve --config FILE`: load the config, then run the gateway under uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys

from reprise._exceptions import ConfigError
from reprise._gateway.app import create_app
from reprise._gateway.config import load_config


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"reprise serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    import uvicorn

    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,  # the gateway writes its own line per request, without secrets
        lifespan="on",
        http=getattr(args, "http", "auto"),
        loop=getattr(args, "loop", "auto"),
        timeout_graceful_shutdown=10,
    )
    return 0


def configure_logging(level: str) -> None:
    """JSON lines from the gateway's logger on stderr, as they are written."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    gateway = logging.getLogger("reprise")
    gateway.handlers[:] = [handler]
    gateway.setLevel(level.upper())
    gateway.propagate = False
