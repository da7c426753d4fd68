"""`reprise model export`: write a sentence-transformers model's transformer to ONNX, once.

This is the only code that imports torch (and transformers). It runs at set-up
time; serving loads the file with ONNX Runtime alone. The graph maps
`input_ids`, `attention_mask` (and `token_type_ids` if the model takes them)
to `last_hidden_state`, with dynamic batch and sequence axes. Before the file
is moved into place it is checked against torch on padded input, so a broken
export never reaches the cache; the move is atomic, so a concurrent reader sees
either no file or a whole one.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from reprise._embedders.local import ModelSpec
from reprise._exceptions import EmbedderError

OPSET = 17
_CHECK_TEXTS = ["a", "How do I export a BERT model to ONNX with dynamic axes and padding?"]


def run(args: argparse.Namespace) -> int:
    """The CLI entry point (wired in `reprise._cli`); 1 with a one-line message on failure."""
    model_dir = Path(args.model_dir) if args.model_dir else None
    try:
        spec = ModelSpec.load(model_dir)
        target = spec.onnx_path()
        if target.is_file() and not args.force:
            if not args.quiet:
                print(f"{spec.name}: already exported to {target}")
            return 0
        path = export(spec, force=args.force)
    except EmbedderError as exc:
        print(f"reprise model export: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"{spec.name}: exported to {path}")
    return 0


def export(spec: ModelSpec, *, cache_dir: Path | None = None, force: bool = False) -> Path:
    """Export `spec`'s transformer to its cache path (unless there already); return the path."""
    target = spec.onnx_path(cache_dir)
    if target.is_file() and not force:
        return target
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise EmbedderError(
            "exporting the model needs torch and transformers: pip install 'reprise[model]'"
        ) from exc
    transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    model = transformers.AutoModel.from_pretrained(str(spec.model_dir)).eval()
    wrapper = _HiddenStates(model, torch)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".model-", suffix=".onnx.tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        feeds = _example_inputs(spec, wrapper.input_names)
        _torch_export(torch, wrapper, feeds, tmp)
        _check(tmp, wrapper, feeds, torch)
        tmp.chmod(0o644)  # mkstemp makes it private; the cache may be shared
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


class _HiddenStates:
    """Builds a torch module whose only output is `last_hidden_state`."""

    def __init__(self, model: Any, torch: Any) -> None:
        accepted = inspect.signature(model.forward).parameters
        self.input_names = ["input_ids", "attention_mask"]
        if "token_type_ids" in accepted and getattr(model.config, "type_vocab_size", None):
            self.input_names.append("token_type_ids")
        names = self.input_names

        class Module(torch.nn.Module):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *inputs: Any) -> Any:
                kwargs = dict(zip(names, inputs, strict=True))
                return self.model(**kwargs).last_hidden_state

        self.module = Module().eval()


def _example_inputs(spec: ModelSpec, names: list[str]) -> dict[str, np.ndarray[Any, Any]]:
    """Two texts of different length, so the mask has padding the graph must honour."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(spec.model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=spec.max_seq_length)
    tokenizer.enable_padding()
    encodings = tokenizer.encode_batch(_CHECK_TEXTS)
    feeds = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    return {name: feeds[name] for name in names}


def _torch_export(torch: Any, wrapper: _HiddenStates, feeds: dict[str, Any], path: Path) -> None:
    axes = {name: {0: "batch", 1: "sequence"} for name in [*feeds, "last_hidden_state"]}
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    # The TorchScript exporter handles a plain encoder simply and reliably; its
    # deprecation and tracer warnings are about code paths this model does not take
    # (the padded example input makes the attention mask part of the graph).
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper.module,
            args,
            str(path),
            input_names=list(feeds),
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def _check(path: Path, wrapper: _HiddenStates, feeds: dict[str, Any], torch: Any) -> None:
    """The exported graph must reproduce torch's hidden states on unpadded tokens."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["last_hidden_state"], feeds)
    with torch.no_grad():
        want = wrapper.module(*(torch.from_numpy(v) for v in feeds.values())).numpy()
    mask = feeds["attention_mask"].astype(bool)
    error = float(np.abs(got[mask] - want[mask]).max())
    if error > 1e-3:
        raise EmbedderError(f"the ONNX export disagrees with torch (max abs error {error:.2e})")
