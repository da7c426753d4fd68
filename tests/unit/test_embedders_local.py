"""The local ONNX embedder: agreement with sentence-transformers, batching, tokens, errors."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reprise._embedders import local
from reprise._embedders.export import export
from reprise._embedders.local import LocalEmbedder, ModelSpec
from reprise._exceptions import EmbedderError
from reprise._protocols import Embedder

WORDS = [
    "cache",
    "model",
    "python",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "price",
    "weather",
    "paris",
    "tomorrow",
    "learn",
    "best",
    "way",
    "how",
    "what",
    "why",
    "when",
    "database",
    "index",
    "vector",
    "latency",
    "error",
    "timeout",
    "retry",
    "money",
    "bank",
    "river",
    "account",
    "password",
    "reset",
    "email",
    "phone",
]
UNICODE = [
    "Héllo wörld, ça va ?",
    "日本語のテキストを埋め込む",
    "Привет, как дела?",
    "مرحبا بالعالم",
    "emoji 🙂🚀 and symbols ∑∫√ ≤ ≥",
    "Ünïcödé ñ ß ø å æ œ",
    "中文 mixed with English words",
    "\u200bzero\u200bwidth\u200bspaces",
    "tab\tseparated\nnew lines\r\nand  double  spaces",
]


def varied_texts(n: int = 250) -> list[str]:
    """Short questions, numbers, unicode, code, empty and long texts (past 256 tokens)."""
    rng = random.Random(7)
    texts = ["", " ", "a", "?", "1234567890", "What is 2 + 2?", "def f(x): return x ** 2"]
    texts += UNICODE
    texts += [" ".join(rng.choices(WORDS, k=300)), "word " * 600, "日本" * 400]
    texts += ["supercalifragilisticexpialidocious " * 40]
    while len(texts) < n:
        k = rng.choice([1, 2, 4, 6, 10, 16, 30])
        words = rng.choices(WORDS, k=k)
        if rng.random() < 0.3:
            words.insert(rng.randrange(k + 1), str(rng.randrange(10**6)))
        if rng.random() < 0.2:
            words.append(rng.choice(UNICODE))
        text = " ".join(words).capitalize()
        texts.append(text + rng.choice(["?", ".", "!", ""]))
    return texts


@pytest.fixture(scope="module")
def onnx_ready() -> None:
    """The default export, made once (a no-op when `scripts/setup` already made it)."""
    export(ModelSpec.load())


@pytest.fixture(scope="module")
async def embedder(onnx_ready: None) -> AsyncIterator[LocalEmbedder]:
    emb = LocalEmbedder()
    yield emb
    await emb.aclose()


def cosines(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.asarray((a * b).sum(axis=1))


@pytest.mark.slow
async def test_fresh_export_matches_sentence_transformers(tmp_path: Path) -> None:
    """Export into an empty cache, then compare 250 varied texts with the reference."""
    from sentence_transformers import SentenceTransformer

    spec = ModelSpec.load()
    path = export(spec, cache_dir=tmp_path)
    assert path == spec.onnx_path(tmp_path)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["model.onnx"]  # no temp file left
    texts = varied_texts()
    emb = LocalEmbedder(cache_dir=tmp_path)
    try:
        ours = await emb.embed(texts)
    finally:
        await emb.aclose()
    reference = SentenceTransformer(str(spec.model_dir), device="cpu").encode(
        texts, batch_size=32, convert_to_numpy=True
    )
    sims = cosines(ours, reference)
    worst = int(np.argmin(sims))
    assert sims.min() >= 0.999, (texts[worst][:80], sims.min())
    assert ours.dtype == np.float32
    assert ours.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_serving_never_imports_torch(onnx_ready: None) -> None:
    code = (
        "import asyncio, sys, reprise\n"
        "from reprise._embedders.local import LocalEmbedder\n"
        "async def main():\n"
        "    e = LocalEmbedder()\n"
        "    v = await e.embed(['hello', 'world'])\n"
        "    await e.embed_tokens(['hello'])\n"
        "    await e.aclose()\n"
        "    assert v.shape == (2, 384), v.shape\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_onnxruntime_survives_the_embedded_store_loaded_first(onnx_ready: None) -> None:
    """onnxruntime segfaults if first imported after usearch without `reprise._native`."""
    code = (
        "import asyncio\n"
        "import reprise._stores.embedded, usearch.index\n"
        "from reprise import LocalEmbedder\n"
        "print(asyncio.run(LocalEmbedder().embed(['x'])).shape)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (out.returncode, out.stdout.strip()) == (0, "(1, 384)"), out.stderr[-500:]


async def test_satisfies_the_protocol(embedder: LocalEmbedder) -> None:
    assert isinstance(embedder, Embedder)
    assert embedder.dims == 384
    empty = await embedder.embed([])
    assert empty.shape == (0, 384)
    assert empty.dtype == np.float32


async def test_batch_and_single_agree(embedder: LocalEmbedder) -> None:
    """Padding to the batch's longest text must not change any text's vector."""
    texts = ["short", "a somewhat longer sentence about caching " * 5, "", "mid length text"]
    together = await embedder.embed(texts)
    alone = np.vstack([await embedder.embed([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=2e-5)


async def test_similar_texts_are_closer_than_unrelated(embedder: LocalEmbedder) -> None:
    a, b, c = await embedder.embed(
        ["How do I reset my password?", "How can I reset my password?", "Best pizza in Rome"]
    )
    assert float(a @ b) > 0.9
    assert float(a @ c) < 0.3


@pytest.fixture
def counting_runs(embedder: LocalEmbedder, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the number of texts of each model call."""
    sizes: list[int] = []
    run = embedder._model.run

    def counted(jobs: Any) -> Any:
        sizes.append(sum(len(job.texts) for job in jobs))
        return run(jobs)

    monkeypatch.setattr(embedder._model, "run", counted)
    return sizes


async def test_concurrent_calls_share_one_model_call(
    embedder: LocalEmbedder, counting_runs: list[int]
) -> None:
    texts = [f"question number {i} about vectors" for i in range(32)]
    results = await asyncio.gather(*(embedder.embed([t]) for t in texts))
    assert counting_runs == [32]
    np.testing.assert_allclose(np.vstack(results), await embedder.embed(texts), atol=2e-5)


async def test_sentence_and_token_requests_share_a_model_call(
    embedder: LocalEmbedder, counting_runs: list[int]
) -> None:
    vectors, (tokens,) = await asyncio.gather(
        embedder.embed(["plain sentence"]), embedder.embed_tokens(["with its tokens"])
    )
    assert counting_runs == [2]
    assert tokens.tokens == ["with", "its", "token", "##s"]
    np.testing.assert_allclose(vectors[0], (await embedder.embed(["plain sentence"]))[0], atol=2e-5)


async def test_requests_arriving_while_busy_form_the_next_batch(
    embedder: LocalEmbedder, counting_runs: list[int]
) -> None:
    first = asyncio.ensure_future(embedder.embed(["first"]))
    await asyncio.sleep(0)  # the worker takes "first" and starts the model call
    rest = [asyncio.ensure_future(embedder.embed([f"later {i}"])) for i in range(5)]
    await asyncio.gather(first, *rest)
    assert counting_runs == [1, 5]


async def test_max_batch_splits_the_queue(
    embedder: LocalEmbedder, counting_runs: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedder, "max_batch", 4)
    await asyncio.gather(*(embedder.embed([f"t{i}", f"u{i}"]) for i in range(5)))
    assert counting_runs == [4, 4, 2]


async def test_a_bulk_call_lets_others_in_between_its_batches(
    embedder: LocalEmbedder, counting_runs: list[int]
) -> None:
    texts = [f"bulk text number {i}" + " more" * (i % 7) for i in range(200)]
    bulk = asyncio.ensure_future(embedder.embed(texts))
    await asyncio.sleep(0)  # the bulk call queues its first batch
    single = asyncio.ensure_future(embedder.embed(["an interactive query"]))
    vectors, _ = await asyncio.gather(bulk, single)
    assert counting_runs == [64, 1, 64, 64, 8]
    tokens = await embedder.embed_tokens(texts)
    for i in (0, 1, 63, 64, 199):  # reassembled in input order
        np.testing.assert_allclose(vectors[i], (await embedder.embed([texts[i]]))[0], atol=2e-5)
        assert tokens[i].tokens[:3] == ["bulk", "text", "number"]
        assert tokens[i].tokens[3] == str(i)
        np.testing.assert_allclose(tokens[i].sentence, vectors[i], atol=2e-5)


async def test_a_cancelled_caller_does_not_disturb_others(embedder: LocalEmbedder) -> None:
    doomed = asyncio.ensure_future(embedder.embed(["doomed"]))
    kept = asyncio.ensure_future(embedder.embed(["kept"]))
    await asyncio.sleep(0)
    doomed.cancel()
    (vector,) = await kept
    assert doomed.cancelled()
    np.testing.assert_allclose(vector, (await embedder.embed(["kept"]))[0], atol=1e-6)


async def test_a_queue_of_cancelled_calls_runs_no_model_call(
    embedder: LocalEmbedder, counting_runs: list[int]
) -> None:
    doomed = asyncio.ensure_future(embedder.embed(["doomed"]))
    await asyncio.sleep(0)  # queued; the worker has not taken it yet
    doomed.cancel()
    await asyncio.sleep(0.01)
    assert counting_runs == []
    assert (await embedder.embed(["alive"])).shape == (1, 384)
    assert counting_runs == [1]


async def test_model_failure_becomes_embedder_error(
    embedder: LocalEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(jobs: Any) -> Any:
        raise RuntimeError("onnx runtime exploded")

    monkeypatch.setattr(embedder._model, "run", broken)
    with pytest.raises(EmbedderError, match="exploded"):
        await embedder.embed(["x"])
    monkeypatch.undo()
    assert (await embedder.embed(["x"])).shape == (1, 384)  # the worker recovers


async def test_embed_tokens(embedder: LocalEmbedder) -> None:
    texts = ["The cat didn't sit", "", "x " * 400]
    got = await embedder.embed_tokens(texts)
    cat, empty, long = got
    assert cat.tokens == ["the", "cat", "didn", "'", "t", "sit"]
    assert [texts[0][s:e] for s, e in cat.offsets] == ["The", "cat", "didn", "'", "t", "sit"]
    assert cat.vectors.shape == (6, 384)
    np.testing.assert_allclose(np.linalg.norm(cat.vectors, axis=1), 1.0, atol=1e-5)
    assert empty.tokens == []
    assert empty.vectors.shape == (0, 384)
    assert len(long.tokens) == 254  # 256 minus [CLS] and [SEP]
    sentences = await embedder.embed(texts)
    for item, sentence in zip(got, sentences, strict=True):
        np.testing.assert_allclose(item.sentence, sentence, atol=2e-5)
    # A token's vector depends on its context: "cat" differs between sentences.
    (dog,) = await embedder.embed_tokens(["the cat barked at the mailman"])
    assert float(cat.vectors[1] @ dog.vectors[1]) < 0.99


async def test_closed_embedder_refuses(onnx_ready: None) -> None:
    emb = LocalEmbedder()
    await emb.embed(["warm"])
    await emb.aclose()
    with pytest.raises(EmbedderError, match="closed"):
        await emb.embed(["x"])


def test_missing_export_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(EmbedderError, match="reprise model export"):
        LocalEmbedder(cache_dir=tmp_path)


def test_corrupt_export_says_how_to_redo_it(tmp_path: Path) -> None:
    path = ModelSpec.load().onnx_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an onnx file")
    with pytest.raises(EmbedderError, match="--force"):
        LocalEmbedder(cache_dir=tmp_path)


def test_cache_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPRISE_CACHE_DIR", str(tmp_path))
    path = ModelSpec.load().onnx_path()
    assert path.parent.parent == tmp_path / "models"
    assert path.parent.name.startswith("all-MiniLM-L6-v2-")


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """A copy of the bundled model's small files (configs), to edit."""
    source = local.default_model_dir()
    target = tmp_path / "my-model"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.safetensors", "*.md"))
    (target / "model.safetensors").write_bytes(b"\0" * 1000)
    return target


def edit_json(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(changes)
    path.write_text(json.dumps(data))


def test_spec_reads_the_model_directory(model_copy: Path) -> None:
    spec = ModelSpec.load(model_copy)
    assert (spec.name, spec.dims, spec.max_seq_length, spec.pooling) == (
        "my-model",
        384,
        256,
        "mean",
    )
    before = spec.fingerprint()
    edit_json(model_copy / "sentence_bert_config.json", max_seq_length=128, do_lower_case=True)
    edit_json(
        model_copy / "1_Pooling/config.json",
        pooling_mode_mean_tokens=False,
        pooling_mode_cls_token=True,
    )
    changed = ModelSpec.load(model_copy)
    assert (changed.max_seq_length, changed.pooling, changed.do_lower_case) == (128, "cls", True)
    assert changed.fingerprint() != before  # a new export is needed


def test_weights_change_the_fingerprint(model_copy: Path) -> None:
    before = ModelSpec.load(model_copy).fingerprint()
    (model_copy / "model.safetensors").write_bytes(b"\1" * 1000)
    assert ModelSpec.load(model_copy).fingerprint() != before


def test_unsupported_modules_are_refused(model_copy: Path) -> None:
    modules = json.loads((model_copy / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "x.models.Dense"})
    (model_copy / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(EmbedderError, match="unsupported modules"):
        ModelSpec.load(model_copy)


def test_pooling_matches_sentence_transformers_definitions() -> None:
    hidden = np.array([[[1.0, 2.0], [3.0, -4.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])
    np.testing.assert_allclose(local._pool(hidden, mask, "mean"), [[2.0, -1.0]])
    np.testing.assert_allclose(local._pool(hidden, mask, "cls"), [[1.0, 2.0]])
    np.testing.assert_allclose(local._pool(hidden, mask, "max"), [[3.0, 2.0]])
    np.testing.assert_allclose(
        local._pool(hidden, mask, "mean_sqrt_len"), [[4 / np.sqrt(2), -2 / np.sqrt(2)]]
    )


def test_chunks_bound_texts_and_padded_tokens() -> None:
    rng = np.random.default_rng(3)
    lengths = rng.choice([2, 10, 30, 256], size=500)
    order = np.argsort(lengths, kind="stable")
    chunks = local._chunks(order, lengths, 64)
    assert sorted(np.concatenate(chunks).tolist()) == list(range(500))
    for chunk in chunks:
        assert len(chunk) <= 64
        assert len(chunk) * lengths[chunk].max() <= local._TOKEN_BUDGET
    assert [len(c) for c in local._chunks(order[:1], lengths, 64)] == [1]


def test_export_command_is_idempotent(onnx_ready: None, capsys: pytest.CaptureFixture[str]) -> None:
    from reprise._cli import main

    assert main(["model", "export"]) == 0
    assert "already exported to" in capsys.readouterr().out
    assert main(["model", "export", "--quiet"]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.slow
async def test_another_models_pooling_and_length_match_sentence_transformers(
    tmp_path: Path, onnx_ready: None
) -> None:
    """A model directory with CLS pooling and 128 tokens is served as sentence-transformers does.

    The weights are the bundled model's, so its ONNX graph is reused under the
    new directory's cache path: what is tested is the reading of its configs.
    """
    from sentence_transformers import SentenceTransformer

    source = local.default_model_dir()
    model_dir = tmp_path / "cls-model"
    shutil.copytree(source, model_dir, ignore=shutil.ignore_patterns("*.safetensors"))
    (model_dir / "model.safetensors").symlink_to(source / "model.safetensors")
    edit_json(model_dir / "sentence_bert_config.json", max_seq_length=128)
    edit_json(
        model_dir / "1_Pooling/config.json",
        pooling_mode_mean_tokens=False,
        pooling_mode_cls_token=True,
    )
    spec = ModelSpec.load(model_dir)
    target = spec.onnx_path(tmp_path / "cache")
    target.parent.mkdir(parents=True)
    target.symlink_to(ModelSpec.load().onnx_path())
    texts = varied_texts(60)
    emb = LocalEmbedder(model_dir, cache_dir=tmp_path / "cache")
    try:
        ours = await emb.embed(texts)
    finally:
        await emb.aclose()
    reference = SentenceTransformer(str(model_dir), device="cpu").encode(texts)
    assert cosines(ours, reference).min() >= 0.999
    default_embedder = LocalEmbedder()
    try:
        default = await default_embedder.embed(texts)
    finally:
        await default_embedder.aclose()
    assert cosines(ours, default).min() < 0.99  # the configs did change the vectors


def test_export_command_reports_a_bad_model_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reprise._cli import main

    assert main(["model", "export", "--model-dir", str(tmp_path)]) == 1
    assert "has no tokenizer.json" in capsys.readouterr().err


def test_default_threads_follow_the_usable_cores_up_to_two(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0}, raising=False)
    assert local.default_threads() == 1
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert local.default_threads() == 2


async def test_fits_counts_word_pieces_exactly_at_the_window(embedder: LocalEmbedder) -> None:
    window = embedder.spec.max_seq_length
    # "cat " is one word piece: `window - 2` of them fill the window with [CLS] and [SEP].
    assert embedder.fits("cat " * (window - 2))
    assert not embedder.fits("cat " * (window - 1))
    assert embedder.fits("short question?")
    # Long in characters, few pieces: counted, not guessed from the length.
    assert embedder.fits("internationalization " * 60)
    # Punctuation is a piece per character: 300 characters overflow 256 pieces.
    assert not embedder.fits("?!" * 150)
