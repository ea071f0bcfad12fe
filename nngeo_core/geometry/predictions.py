"""What a classifier predicts at a set of points: class, entropy and probability margins."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .chunking import iter_chunks


def predictions(work_model: nn.Module, x: torch.Tensor, batch: int = 4096) -> dict[str, np.ndarray]:
    """Predicted class, softmax entropy (nats) and probability margins of a float64 model copy."""
    preds: list[torch.Tensor] = []
    ent: list[torch.Tensor] = []
    margin: list[torch.Tensor] = []
    pmax: list[torch.Tensor] = []
    with torch.no_grad():
        for sl in iter_chunks(len(x), batch):
            logits = work_model(x[sl]).reshape(len(x[sl]), -1)
            if logits.shape[1] == 1:  # one logit: a binary classifier with p(1) = sigmoid
                logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
            logp = torch.log_softmax(logits, dim=1)
            p = logp.exp()
            top2 = torch.topk(p, k=min(2, p.shape[1]), dim=1).values
            preds.append(p.argmax(1))
            ent.append(-(p * logp).sum(1))
            pmax.append(top2[:, 0])
            if p.shape[1] == 2:
                margin.append(p[:, 1] - p[:, 0])  # signed: its zero contour is the boundary
            elif p.shape[1] > 2:
                margin.append(top2[:, 0] - top2[:, 1])  # ≥ 0, zero on a boundary
            else:
                margin.append(torch.ones_like(p[:, 0]))

    def cat(xs: list[torch.Tensor]) -> np.ndarray:
        return torch.cat(xs).cpu().numpy()

    return {"pred": cat(preds).astype(np.int64), "entropy": cat(ent), "margin": cat(margin), "p_max": cat(pmax)}
