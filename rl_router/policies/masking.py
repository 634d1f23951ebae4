"""Action masking for policy heads: disallowed actions get a logit no softmax can pick."""

from __future__ import annotations

import torch

# The logit of a masked action: the float32 minimum, so softmax gives it exactly 0 and no NaN.
MASK_VALUE = torch.finfo(torch.float32).min


def masked_logits(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Push invalid actions' logits to :data:`MASK_VALUE` so they get probability exactly 0.

    Args:
        logits: ``[B, A]`` unnormalised action scores.
        mask: ``[B, A]`` bool (or 0/1), True where the action is valid; None: all valid.

    Raises:
        ValueError: a row with no valid action (the env must always leave one).

    >>> torch.softmax(masked_logits(torch.zeros(1, 3), torch.tensor([[True, False, True]])), -1).tolist()
    [[0.5, 0.0, 0.5]]
    """
    if mask is None:
        return logits
    mask = mask.to(torch.bool)
    if mask.shape != logits.shape:
        raise ValueError(f"action mask {tuple(mask.shape)} does not match logits {tuple(logits.shape)}")
    if not mask.any(dim=-1).all():
        rows = (~mask.any(dim=-1)).nonzero().flatten().tolist()
        raise ValueError(f"rows {rows} have every action masked: the env must leave at least one valid")
    return logits.masked_fill(~mask, MASK_VALUE)
