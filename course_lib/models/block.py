"""The transformer block: attention lets positions share information, an MLP then works on each position.

Lesson 07. Pre-LayerNorm, as in GPT-2 and nanoGPT:
    x = x + attention(ln1(x))
    x = x + mlp(ln2(x))
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib.validation import require_floating, require_int, require_number, require_rank, shape_str
from course_lib.models.attention import MultiHeadAttention


def check_sequence(x: torch.Tensor, d_model: int) -> None:
    """Raise a clear error unless x is a float ``(batch, time, d_model)`` tensor."""
    require_rank(x, "x", 3, f"(batch, time, d_model={d_model})", max_rank=3)
    require_floating(x, "x")
    if x.shape[-1] != d_model:
        raise ValueError(f"x must have shape (batch, time, d_model={d_model}), got {shape_str(x.shape)}")


class MLP(nn.Module):
    """Position-wise feed-forward network: ``(batch, time, d_model)`` -> same shape, via ``d_ff`` hidden units."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        d_model, d_ff = require_int(d_model, "d_model", minimum=1), require_int(d_ff, "d_ff", minimum=1)
        dropout = require_number(dropout, "dropout", minimum=0, below=1)
        self.fc = nn.Linear(d_model, d_ff)
        self.act = nn.GELU()
        self.proj = nn.Linear(d_ff, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(self.act(self.fc(x))))


def require_flag(value, name: str) -> bool:
    """``value`` if it is True or False; a TypeError naming ``name`` otherwise (1 or "yes" are refused)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def layer_norm_or_identity(d_model: int, norm: bool) -> nn.Module:
    """``nn.LayerNorm(d_model)``, or ``nn.Identity()`` for a model built without normalisation."""
    return nn.LayerNorm(d_model) if norm else nn.Identity()


class TransformerBlock(nn.Module):
    """One pre-LayerNorm block: ``(batch, time, d_model)`` -> ``(batch, time, d_model)``.

    ``forward(x, mask=None, return_attention=False)``; mask as in ``MultiHeadAttention`` (True = may
    attend). With ``return_attention=True`` it returns ``(x, weights (batch, heads, query, key))``.

    The two switches exist to measure what each part is for (lesson 07); a real model keeps both on.
    ``residual=False`` drops the skip connections: ``x = attention(ln1(x))``, then ``x = mlp(ln2(x))``.
    ``norm=False`` puts ``nn.Identity()`` where each LayerNorm stands.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int | None = None, dropout: float = 0.0,
                 residual: bool = True, norm: bool = True):
        super().__init__()
        d_model = require_int(d_model, "d_model", minimum=1)
        d_ff = 4 * d_model if d_ff is None else require_int(d_ff, "d_ff", minimum=1)  # 0 is not "the default"
        self.residual = require_flag(residual, "residual")
        self.norm = require_flag(norm, "norm")
        self.ln1 = layer_norm_or_identity(d_model, norm)
        self.attn = MultiHeadAttention(d_model, n_heads, dropout=dropout)
        self.ln2 = layer_norm_or_identity(d_model, norm)
        self.mlp = MLP(d_model, d_ff, dropout)
        self.drop = nn.Dropout(dropout)

    def extra_repr(self) -> str:
        switched_off = [name for name in ("residual", "norm") if not getattr(self, name)]
        return ", ".join(f"{name}=False" for name in switched_off)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, return_attention: bool = False):
        check_sequence(x, self.attn.d_model)
        attended, weights = self.attn(self.ln1(x), mask, need_weights=return_attention)
        if self.residual:
            x = x + self.drop(attended)
            x = x + self.mlp(self.ln2(x))
        else:
            x = self.drop(attended)
            x = self.mlp(self.ln2(x))
        return (x, weights) if return_attention else x

    @classmethod
    def from_torch(cls, layer: nn.TransformerEncoderLayer) -> "TransformerBlock":
        """An equal block with the weights of ``nn.TransformerEncoderLayer(norm_first=True,
        batch_first=True, activation="gelu")``."""
        if not isinstance(layer, nn.TransformerEncoderLayer):
            raise TypeError(f"from_torch expects a torch.nn.TransformerEncoderLayer, got {type(layer).__name__}")
        problems = []
        if not layer.norm_first:
            problems.append("norm_first=True")
        if not layer.self_attn.batch_first:
            problems.append("batch_first=True")
        if getattr(layer, "activation_relu_or_gelu", 0) != 2 or getattr(layer.activation, "approximate", "none") != "none":
            problems.append('activation="gelu" (exact, not the tanh approximation)')
        if layer.linear1.bias is None or layer.norm1.bias is None:
            problems.append("bias=True")
        if problems:
            raise ValueError("from_torch needs a layer built with " + ", ".join(problems))
        d_model, d_ff = layer.linear1.in_features, layer.linear1.out_features
        block = cls(d_model, layer.self_attn.num_heads, d_ff=d_ff, dropout=layer.dropout.p)
        block.attn = MultiHeadAttention.from_torch(layer.self_attn)
        with torch.no_grad():
            for ours, theirs in ((block.ln1, layer.norm1), (block.ln2, layer.norm2),
                                 (block.mlp.fc, layer.linear1), (block.mlp.proj, layer.linear2)):
                ours.weight.copy_(theirs.weight)
                ours.bias.copy_(theirs.bias)
            block.ln1.eps, block.ln2.eps = layer.norm1.eps, layer.norm2.eps
        return block.to(layer.linear1.weight.device)


class TransformerStack(nn.Module):
    """``n_layers`` blocks and a final LayerNorm: ``(batch, time, d_model)`` -> same shape.

    With ``return_attention=True`` also returns a list of per-layer weights ``(batch, heads, query, key)``.
    ``residual`` and ``norm`` go to every block (see ``TransformerBlock``); ``norm=False`` also replaces
    the final LayerNorm by ``nn.Identity()``.
    """

    def __init__(self, d_model: int, n_heads: int, n_layers: int, d_ff: int | None = None, dropout: float = 0.0,
                 residual: bool = True, norm: bool = True):
        super().__init__()
        if not isinstance(n_layers, int) or isinstance(n_layers, bool) or n_layers < 1:
            raise ValueError(f"n_layers must be a positive int, got {n_layers!r}")
        d_model = require_int(d_model, "d_model", minimum=1)
        require_flag(residual, "residual")
        require_flag(norm, "norm")
        self.d_model = d_model
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads, d_ff, dropout, residual=residual, norm=norm)
                                    for _ in range(n_layers))
        self.ln_f = layer_norm_or_identity(d_model, norm)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, return_attention: bool = False):
        check_sequence(x, self.d_model)
        attention = []
        for block in self.blocks:
            if return_attention:
                x, weights = block(x, mask, return_attention=True)
                attention.append(weights)
            else:
                x = block(x, mask)
        x = self.ln_f(x)
        return (x, attention) if return_attention else x


def init_weights(module: nn.Module) -> None:
    """GPT-2's scale for weights (normal, std 0.02, as in nanoGPT); biases keep PyTorch's default.
    Use ``model.apply(init_weights)``.

    Measured on the reference model (``course_lib.experiments.reference``): with zeroed biases it learns agreement
    just as well, but a head that looks from the verb to its subject emerged in only 3 of 5 seeds; with
    this initialisation, in 6 of 6.
    """
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
