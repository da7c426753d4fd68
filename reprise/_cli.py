"""The `reprise` command. Each subcommand's implementation is imported only when run."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence

from reprise._exceptions import ConfigError
from reprise._plugins import import_from_string
from reprise._threads import settle_threads

# Optional dependencies by extra (pyproject.toml), for the commands that need them.
EXTRAS = {"bench": ("matplotlib",)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reprise", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the gateway on the embedded default (simulated LLM)")
    demo.add_argument("--data-dir", default=None, help="cache directory (default: a temp dir)")
    demo.add_argument("--latency", type=float, default=1.5, help="simulated LLM seconds")
    demo.set_defaults(run="reprise._demo:run")

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", required=True, help="YAML config file")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--http", default="auto", choices=["auto", "h11", "httptools"])
    serve.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    serve.set_defaults(run="reprise._gateway.serve:run")

    check = sub.add_parser("check", help="validate a gateway config and show its policies")
    check.add_argument("--config", required=True, help="YAML config file")
    check.set_defaults(run="reprise._gateway.config:check")

    model = sub.add_parser("model", help="manage the local embedding model")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    export = model_sub.add_parser("export", help="export the local model to ONNX (once)")
    export.add_argument("--model-dir", default=None, help="sentence-transformers model dir")
    export.add_argument("--force", action="store_true")
    export.add_argument("--quiet", action="store_true")
    export.set_defaults(run="reprise._embedders.export:run")
    embed = model_sub.add_parser(
        "serve", help="serve the local model as an OpenAI-compatible /v1/embeddings"
    )
    embed.set_defaults(
        run="reprise._embedders.serve:run", configure="reprise._embedders.serve:add_arguments"
    )

    cache = sub.add_parser(
        "cache", help="operate the configured cache: stats, purge, export, import"
    )
    cache.set_defaults(run="reprise._admin.cli:run", configure="reprise._admin.cli:add_arguments")

    bench = sub.add_parser("bench", help="measure answer quality and speed (reprise[bench])")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    quality = bench_sub.add_parser("quality", help="precision / recall / false hits on pairs")
    quality.set_defaults(
        run="reprise._bench.quality:run", configure="reprise._bench.quality:add_arguments"
    )
    context = bench_sub.add_parser(
        "context", help="wrong hits across conversations and long prompts"
    )
    context.set_defaults(
        run="reprise._bench.context:run", configure="reprise._bench.context:add_arguments"
    )
    speed = bench_sub.add_parser("speed", help="gateway hit / miss latency and throughput")
    speed.set_defaults(
        run="reprise._bench.speed:run", configure="reprise._bench.speed:add_arguments"
    )
    for command in (quality, speed):
        command.set_defaults(extra="bench")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    # Benchmarks own many options; they declare them next to their code. Found
    # without parsing, so that `--help` lists them too.
    sub = _find_subparser(parser, argv)
    if missing := _missing_extra(sub.get_default("extra")):
        print(f"reprise: {sub.prog} {missing}", file=sys.stderr)
        return 2
    configure = sub.get_default("configure")
    if configure:
        import_from_string(configure)(sub)
    args = parser.parse_args(argv)
    settle_threads()
    try:
        result = import_from_string(args.run)(args)
    except ConfigError as exc:  # a setting the command cannot honour: its message, no traceback
        print(f"{sub.prog}: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


def _missing_extra(extra: str | None) -> str | None:
    """What to install when a command's optional dependencies are missing, else None.

    Checked before anything is imported or run, so that a long benchmark does not
    stop at its end for want of the plotting library.
    """
    if extra is None:
        return None
    missing = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return f"needs {', '.join(missing)}, from the {extra!r} extra: pip install 'reprise[{extra}]'"


def _find_subparser(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> argparse.ArgumentParser:
    current = parser
    for word in argv:
        actions = [a for a in current._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions or word not in actions[0].choices:
            break
        current = actions[0].choices[word]
    return current


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
