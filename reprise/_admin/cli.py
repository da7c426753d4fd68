"""`reprise cache stats | purge | export | import --config FILE`: the admin API's operations
run directly against the configured store, without a gateway.

The caches are opened as the gateway opens them (one per embeddings backend,
same store locations). The embedded store belongs to one process at a time:
while a gateway runs on it, use the admin API, which changes the gateway's
own view; Redis may be operated from anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any

from tqdm import tqdm

from reprise._admin.stats import admin_store, digest, partition_json, store_stats
from reprise._admin.transfer import export_lines, import_lines
from reprise._cache import SemanticCache
from reprise._exceptions import CacheError, ConfigError
from reprise._gateway.caches import make_slots
from reprise._gateway.config import GatewayConfig, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="cache_command", required=True)
    stats = sub.add_parser("stats", help="entries, bytes, evictions and ages per partition")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    purge = sub.add_parser("purge", help="delete every entry, or one partition's")
    purge.add_argument("--partition", help="the partition's digest (as stats shows it)")
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    export = sub.add_parser("export", help="write the live entries as JSONL")
    export.add_argument("--out", default="-", help="file to write (default: stdout)")
    export.add_argument("--partition", help="only this partition (its digest)")
    imp = sub.add_parser("import", help="load JSONL entries (as export writes them)")
    imp.add_argument("file", help="JSONL file, or - for stdin")
    for command in (stats, purge, export, imp):
        command.add_argument("--config", required=True, help="the gateway's YAML config")
        command.add_argument("--cache", help="one cache (embeddings backend id) only")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        return asyncio.run(_COMMANDS[args.cache_command](config, args))
    except (ConfigError, CacheError, OSError) as exc:
        print(f"reprise cache {args.cache_command}: {exc}", file=sys.stderr)
        return 2


@contextlib.asynccontextmanager
async def _open(config: GatewayConfig, only: str | None) -> AsyncIterator[dict[str, SemanticCache]]:
    slots = make_slots(config, serving=False)
    if only is not None and only not in slots:
        raise ConfigError(f"no cache {only!r}; configured: {', '.join(slots) or 'none'}")
    chosen = {name: slot for name, slot in slots.items() if only in (None, name)}
    try:
        for name, slot in chosen.items():
            if not await slot.open_once():
                raise CacheError(f"cannot open cache {name!r}: {slot.error}")
        yield {name: slot.cache for name, slot in chosen.items() if slot.cache is not None}
    finally:
        for slot in chosen.values():
            await slot.aclose()


async def _stats(config: GatewayConfig, args: argparse.Namespace) -> int:
    names = config.admin is not None and config.admin.show_partition_names
    report: list[dict[str, Any]] = []
    async with _open(config, args.cache) as caches:
        for name, cache in caches.items():
            found = await store_stats(cache.vector_store)
            partitions = [partition_json(p, names=names) for p in found.partitions]
            report.append({"name": name, **found.as_json(), "partitions": partitions})
    if args.json:
        entries = sum(c["entries"] for c in report)
        evictions = sum(c["evictions"] for c in report)
        print(json.dumps({"entries": entries, "evictions": evictions, "caches": report}, indent=2))
        return 0
    for summary in report:
        print(
            f"cache {summary['name']}: {summary['entries']} entries, {summary['bytes']:,} bytes, "
            f"{summary['evictions']} evictions, oldest {_when(summary['oldest'])}, "
            f"newest {_when(summary['newest'])}"
        )
        for p in summary["partitions"]:
            shown = p.get("name", p["partition"])
            print(f"  {shown}  {p['entries']:>8} entries  {p['bytes']:>12,} bytes")
    return 0


async def _purge(config: GatewayConfig, args: argparse.Namespace) -> int:
    async with _open(config, args.cache) as caches:
        targets: list[tuple[SemanticCache, str | None]] = []
        count = 0
        for cache in caches.values():
            found = await store_stats(cache.vector_store)
            for p in found.partitions:
                if args.partition in (None, digest(p.partition), p.partition):
                    count += p.entries
                    if args.partition is not None:
                        targets.append((cache, p.partition))
            if args.partition is None:
                targets.append((cache, None))
        if args.partition is not None and not targets:
            print(f"reprise cache purge: no partition {args.partition!r}", file=sys.stderr)
            return 1
        if not args.yes and not _confirm(f"delete {count} entries?"):
            print("reprise cache purge: not confirmed (pass --yes)", file=sys.stderr)
            return 1
        deleted = sum([await cache.clear(partition) for cache, partition in targets])
    print(f"deleted {deleted} entries")
    return 0


async def _export(config: GatewayConfig, args: argparse.Namespace) -> int:
    written = 0
    with _output(args.out) as out, tqdm(unit=" entries", file=sys.stderr) as bar:
        async with _open(config, args.cache) as caches:
            for cache in caches.values():
                found = await store_stats(cache.vector_store)
                partitions = [p for p in found.partitions if _chosen(p.partition, args.partition)]
                bar.total = (bar.total or 0) + sum(p.entries for p in partitions)
                for p in partitions if args.partition else [None]:
                    partition = p.partition if p is not None else None
                    async for line in export_lines(admin_store(cache.vector_store), partition):
                        out.write(line)
                        written += 1
                        bar.update(1)
    print(f"exported {written} entries", file=sys.stderr)
    return 0


async def _import(config: GatewayConfig, args: argparse.Namespace) -> int:
    async with _open(config, args.cache) as caches:
        if len(caches) != 1:
            raise ConfigError(f"name the cache to import into: --cache ({', '.join(caches)})")
        ((name, cache),) = caches.items()
        with (
            _input(args.file) as source,
            tqdm(total=_count_lines(args.file), unit=" lines", file=sys.stderr) as bar,
        ):
            report = await import_lines(cache, source, progress=bar.update)
    print(json.dumps({"cache": name, **report.as_json()}, indent=2))
    return 0


_COMMANDS = {"stats": _stats, "purge": _purge, "export": _export, "import": _import}


def _chosen(partition: str, wanted: str | None) -> bool:
    return wanted is None or wanted in (digest(partition), partition)


def _when(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


@contextlib.contextmanager
def _output(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with open(path, "wb") as out:
        yield out


@contextlib.contextmanager
def _input(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdin.buffer
        return
    with open(path, "rb") as source:
        yield source


def _count_lines(path: str) -> int | None:
    if path == "-":
        return None
    with open(path, "rb") as source:
        return sum(1 for _ in source)


__all__ = ["add_arguments", "run"]
