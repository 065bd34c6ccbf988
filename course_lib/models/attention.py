"""Attention: every query gives a weight to every key, and returns the weighted average of the values.

Lessons 03-05. Shapes use these names:
    batch (B), heads (H), query (T_q), key (T_k), d (features per query/key), d_v (features per value).

Mask convention, the same as ``torch.nn.functional.scaled_dot_product_attention``:
    a boolean mask where **True means "may attend"**.
(``torch.nn.MultiheadAttention`` uses the opposite: True there means "blocked".)

Bad input is refused once, at the public entry (``check_layer_input``): a model's layers call each other with
``check=False``, so a mask is looked at once per call, not once per layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.validation import (broadcast_shape, require_flag, require_floating, require_int, require_nonempty,
                                   require_number, require_rank, require_sequence, require_tensor,
                                   require_weights_dtype, shape_str)


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention written out step by step.

    Args:
        q: queries ``(..., query, d)``.
        k: keys ``(..., key, d)``.
        v: values ``(..., key, d_v)``.
        mask: optional bool, broadcastable to ``(..., query, key)``; True = may attend.

    Returns:
        ``(output, weights)``: output ``(..., query, d_v)``; weights ``(..., query, key)``, each row
        summing to 1.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        require_rank(t, name, 2, f"(..., {'query' if name == 'q' else 'key'}, {'d_v' if name == 'v' else 'd'})")
        require_floating(t, name)
    require_nonempty(q, "q", -2, "query")
    require_nonempty(k, "k", -2, "key")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share their last dimension d: q is {shape_str(q.shape)}, "
                         f"k is {shape_str(k.shape)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of keys: k is {shape_str(k.shape)}, "
                         f"v is {shape_str(v.shape)}")
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"q, k and v must share one dtype, got {q.dtype}, {k.dtype} and {v.dtype}; "
                        f"convert with .float() (or .double()) first")
    if broadcast_shape(q.shape[:-2], k.shape[:-2], v.shape[:-2]) is None:
        raise ValueError(f"q, k and v must have broadcastable batch dimensions: q is {shape_str(q.shape)}, "
                         f"k is {shape_str(k.shape)}, v is {shape_str(v.shape)}")

    if mask is not None:
        check_mask(mask, (*broadcast_shape(q.shape[:-2], k.shape[:-2]), q.shape[-2], k.shape[-2]))

    weights = scaled_softmax_weights(q, k, mask)  # (..., query, key)
    return weights @ v, weights


def scaled_softmax_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d))`` with blocked pairs set to -inf first: ``(..., query, key)``.

    q ``(..., query, d)``, k ``(..., key, d)``, mask bool broadcastable to ``(..., query, key)``. Unchecked:
    ``scaled_dot_product_attention`` and ``MultiHeadAttention`` check their input before they call it.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., query, key)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)  # over the keys: each query's weights sum to 1


def check_mask(mask, scores_shape: tuple[int, ...], name: str = "mask") -> None:
    """Raise a clear error unless ``mask`` is a bool tensor broadcastable to ``scores_shape`` ``(..., query, key)``
    that lets every query attend to at least one key.

    The last test reads the mask's values: on a GPU it waits for the GPU (a device sync), so it runs once per
    call at the public entry, never once per layer.
    """
    require_tensor(mask, name)
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor (True = may attend), got dtype {mask.dtype}; "
                        f"convert with mask.bool() or build it with causal_mask / padding_mask")
    if broadcast_shape(mask.shape, scores_shape) != tuple(scores_shape):
        raise ValueError(f"{name} must be broadcastable to (..., query, key) = {shape_str(scores_shape)}, "
                         f"got {shape_str(mask.shape)}")
    if not mask.any(dim=-1).all():  # a query with no key to attend to: softmax over nothing gives nan
        raise ValueError(f"{name} blocks every key for at least one query (a row of all False); "
                         f"each query must be allowed to attend to at least one key")


def causal_mask(T: int, device=None) -> torch.Tensor:
    """``(T, T)`` bool, True on and below the diagonal: position t may attend to positions 0..t."""
    T = require_int(T, "T")
    if T < 1:
        raise ValueError(f"causal_mask needs a sequence length T >= 1, got {T}")
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def padding_mask(lengths, max_len: int | None = None) -> torch.Tensor:
    """A key mask from sequence lengths: ``(batch, 1, 1, key)`` bool, True at real (non-padding) tokens.

    It broadcasts to ``(batch, heads, query, key)``. ``lengths`` is a list or 1-D tensor of ints >= 1;
    ``max_len`` (an int, default the longest length) is the number of key positions.
    """
    if isinstance(lengths, (str, bytes)):
        raise TypeError(f"lengths must be a list or 1-D tensor of integers, got {type(lengths).__name__} {lengths!r}")
    lengths = torch.as_tensor(lengths)
    if lengths.numel() == 0:
        raise ValueError("padding_mask needs at least one length, got none")
    if max_len is not None:
        max_len = require_int(max_len, "max_len", minimum=1)
    if lengths.dim() != 1 or lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be a 1-D sequence of integers (batch,), got shape "
                         f"{shape_str(lengths.shape)} and dtype {lengths.dtype}")
    if len(lengths) and int(lengths.min()) < 1:
        raise ValueError(f"every length must be >= 1, got {lengths.tolist()}")
    longest = int(lengths.max()) if len(lengths) else 0
    T = longest if max_len is None else max_len
    if T < longest:
        raise ValueError(f"max_len={max_len} is shorter than the longest sequence ({longest})")
    keep = torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]  # (batch, key)
    return keep[:, None, None, :]


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``(batch, time, d_model)`` -> ``(batch, heads, time, d_head)``; head h holds features h*d_head ... (h+1)*d_head-1."""
    require_rank(x, "x", 3, "(batch, time, d_model)", max_rank=3)
    B, T, D = x.shape
    n_heads = require_int(n_heads, "n_heads")
    if n_heads < 1 or D % n_heads:
        raise ValueError(f"d_model={D} must be divisible by n_heads={n_heads}: x is {shape_str(x.shape)}")
    return x.view(B, T, n_heads, D // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(batch, heads, time, d_head)`` -> ``(batch, time, heads * d_head)``: the inverse of split_heads."""
    require_rank(x, "x", 4, "(batch, heads, time, d_head)", max_rank=4)
    B, H, T, d_head = x.shape
    return x.transpose(1, 2).reshape(B, T, H * d_head)


def require_heads(d_model, n_heads) -> tuple[int, int]:
    """``(d_model, n_heads)`` as ints, each >= 1, ``d_model`` divisible by ``n_heads``: a clear error otherwise."""
    d_model, n_heads = require_int(d_model, "d_model", minimum=1), require_int(n_heads, "n_heads", minimum=1)
    if d_model % n_heads:
        raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads} "
                         f"(each head gets d_model / n_heads features)")
    return d_model, n_heads


def check_layer_input(x, mask, d_model: int, n_heads: int, dtype: torch.dtype | None = None) -> None:
    """The input checks of ``MultiHeadAttention``, ``TransformerBlock`` and ``TransformerStack``, in one place:
    x a float ``(batch, time, d_model)`` tensor of ``dtype``, the dtype of the layer's weights
    (``weights_dtype(layer)``; None: not checked); mask None or a bool mask broadcastable to
    ``(batch, heads, query, key)`` that leaves every query a key."""
    require_sequence(x, "x", d_model)
    require_weights_dtype(x, "x", dtype)  # the dtypes only: no device sync
    if mask is not None:
        B, T, _ = x.shape
        check_mask(mask, (B, n_heads, T, T))


class MultiHeadAttention(nn.Module):
    """Self-attention with ``n_heads`` heads, each looking at its own ``d_model / n_heads`` features.

    ``forward(x, mask=None)`` takes x ``(batch, time, d_model)`` and an optional bool mask broadcastable
    to ``(batch, heads, query, key)`` (True = may attend): e.g. ``causal_mask(T)`` ``(query, key)``,
    ``padding_mask`` ``(batch, 1, 1, key)``, a key mask ``(key,)``, or a full ``(batch, heads, query, key)``.
    It returns ``(output (batch, time, d_model), weights (batch, heads, query, key))``.
    With ``need_weights=False`` the weights are not computed (None), which saves time and memory.
    ``check=False`` skips the checks of x and mask: for a parent module that checked them once for all its layers.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        d_model, n_heads = require_heads(d_model, n_heads)
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.dropout = require_number(dropout, "dropout", minimum=0, below=1)
        bias = require_flag(bias, "bias")
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, n_heads={self.n_heads}"

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, need_weights: bool = True, *,
                check: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        if check:
            check_layer_input(x, mask, self.d_model, self.n_heads, self.q_proj.weight.dtype)
        if mask is not None and mask.dim() < 2:  # (key,) or 0-d: PyTorch's fused kernel wants at least (query, key)
            mask = mask.reshape((1,) * (2 - mask.dim()) + tuple(mask.shape))

        q = split_heads(self.q_proj(x), self.n_heads)  # (B, T, d_model) -> (B, H, T, d_head)
        k = split_heads(self.k_proj(x), self.n_heads)
        v = split_heads(self.v_proj(x), self.n_heads)
        dropout = self.dropout if self.training else 0.0
        # PyTorch's fused kernel computes exactly what scaled_dot_product_attention above computes, without
        # keeping the (B, H, T, T) weights for backward; they are computed only when asked for, so the
        # output is the same number for number whether you ask for them or not.
        heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)  # (B, H, T, d_head)
        weights = scaled_softmax_weights(q, k, mask) if need_weights else None  # (B, H, T, T)
        return self.out_proj(merge_heads(heads)), weights  # heads side by side: (B, T, d_model)

    @classmethod
    def from_torch(cls, m: nn.MultiheadAttention) -> "MultiHeadAttention":
        """An equal module with the weights of PyTorch's ``nn.MultiheadAttention`` (self-attention).

        Note the mask conventions differ: pass ``~torch_mask`` here for PyTorch's bool ``attn_mask``.
        """
        if not isinstance(m, nn.MultiheadAttention):
            raise TypeError(f"from_torch expects a torch.nn.MultiheadAttention, got {type(m).__name__}")
        if not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn:
            raise ValueError("from_torch supports nn.MultiheadAttention with kdim = vdim = embed_dim, "
                             "add_bias_kv=False and add_zero_attn=False")
        has_bias = m.in_proj_bias is not None
        new = cls(m.embed_dim, m.num_heads, dropout=m.dropout, bias=has_bias)
        with torch.no_grad():
            for proj, w in zip((new.q_proj, new.k_proj, new.v_proj), m.in_proj_weight.chunk(3)):
                proj.weight.copy_(w)
            if has_bias:
                for proj, b in zip((new.q_proj, new.k_proj, new.v_proj), m.in_proj_bias.chunk(3)):
                    proj.bias.copy_(b)
                new.out_proj.bias.copy_(m.out_proj.bias)
            new.out_proj.weight.copy_(m.out_proj.weight)
        return new.to(m.in_proj_weight.device)
