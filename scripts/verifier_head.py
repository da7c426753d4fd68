"""Training side of the verifier's interaction head (`reprise/_verify/head.py` runs it).

Imported by `scripts/train_verifier.py`; needs torch (the `model` extra). The
head reads the two prompts' word vectors, which the encoder computed for the
embedding anyway: each word soft-aligns to the other prompt, a small layer
scores what it found there, and max/mean pooling over both sides plus the
combiner's standardised features give one logit. It is trained on the grey
zone only, like the combiner; several seeds are averaged because one seed's
ranking at the very top varies by a few points of recall.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

# The runtime keeps the same limits: see reprise/_verify/head.py.
MAX_WORDS = 32
HIDDEN = 48
EPOCHS = 6
BATCH = 64
SEEDS = (0, 1, 2)

WordItem = tuple[np.ndarray, np.ndarray]  # (vectors (n, dims), content flags (n,))


class Head(torch.nn.Module):  # type: ignore[misc]
    def __init__(self, dims: int, n_features: int) -> None:
        super().__init__()
        self.tok = torch.nn.Linear(2 * dims + 2, HIDDEN)
        self.mid = torch.nn.Linear(4 * HIDDEN + n_features, 32)
        self.out = torch.nn.Linear(32, 1)
        self.tau = torch.nn.Parameter(torch.tensor(10.0))

    def side(self, a: tuple, b: tuple) -> torch.Tensor:
        (va, ca, ma), (vb, _, mb) = a, b
        sims = (va @ vb.transpose(1, 2)).masked_fill(mb[:, None, :] == 0, -1e4)
        aligned = torch.softmax(sims * self.tau, -1) @ vb
        best = sims.max(-1).values.clamp(min=-1)
        u = torch.cat([va * aligned, (va - aligned).abs(), best[..., None], ca[..., None]], -1)
        h = torch.relu(self.tok(u)) * ma[..., None]
        mean = h.sum(1) / ma.sum(1, keepdim=True).clamp(min=1)
        return torch.cat([h.max(1).values, mean], -1)

    def forward(self, a: tuple, b: tuple, feats: torch.Tensor) -> torch.Tensor:
        ha, hb = self.side(a, b), self.side(b, a)
        z = torch.cat([ha + hb, (ha - hb).abs(), feats], -1)
        return self.out(torch.relu(self.mid(z))).squeeze(-1)


def _pad(items: Sequence[WordItem], dims: int) -> tuple:
    n = max(1, max(len(v) for v, _ in items))
    vec = np.zeros((len(items), n, dims), np.float32)
    content = np.zeros((len(items), n), np.float32)
    mask = np.zeros((len(items), n), np.float32)
    for i, (v, c) in enumerate(items):
        vec[i, : len(v)], content[i, : len(v)], mask[i, : len(v)] = v, c, 1
    return torch.from_numpy(vec), torch.from_numpy(content), torch.from_numpy(mask)


def _take(padded: tuple, idx: torch.Tensor) -> tuple:
    """Rows `idx` of a padded side, cut to the longest of them."""
    vec, content, mask = (p[idx] for p in padded)
    n = max(1, int(mask.sum(1).max()))
    return vec[:, :n], content[:, :n], mask[:, :n]


def fit(
    a: Sequence[WordItem], b: Sequence[WordItem], feats: np.ndarray, y: np.ndarray, seed: int
) -> Head:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dims = a[0][0].shape[1]
    head = Head(dims, feats.shape[1])
    opt = torch.optim.AdamW(head.parameters(), 2e-3, weight_decay=1e-2)
    # Padded once, not per batch: padding in Python was most of an epoch's time.
    pa, pb = _pad(a, dims), _pad(b, dims)
    x, t = torch.from_numpy(feats), torch.from_numpy(y.astype(np.float32))
    for _ in range(EPOCHS):
        order = rng.permutation(len(y))
        for lo in range(0, len(order), BATCH):
            idx = torch.from_numpy(order[lo : lo + BATCH])
            logit = head(_take(pa, idx), _take(pb, idx), x[idx])
            target = t[idx]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.eval()


def predict(
    head: Head, a: Sequence[WordItem], b: Sequence[WordItem], feats: np.ndarray
) -> np.ndarray:
    dims = a[0][0].shape[1] if a else 1
    out = []
    with torch.no_grad():
        for lo in range(0, len(feats), 256):
            sl = slice(lo, lo + 256)
            out.append(head(_pad(a[sl], dims), _pad(b[sl], dims), torch.from_numpy(feats[sl])))
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def weights(head: Head) -> dict[str, np.ndarray]:
    """The arrays `reprise._verify.head` reads (Linear weights transposed to (in, out))."""
    return {
        "tok_w": head.tok.weight.detach().numpy().T.copy(),
        "tok_b": head.tok.bias.detach().numpy().copy(),
        "mid_w": head.mid.weight.detach().numpy().T.copy(),
        "mid_b": head.mid.bias.detach().numpy().copy(),
        "out_w": head.out.weight.detach().numpy()[0].copy(),
        "out_b": head.out.bias.detach().numpy().copy(),
        "tau": np.array([float(head.tau.detach())], dtype=np.float32),
    }
