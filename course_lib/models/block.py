"""The transformer block: attention lets positions share information, an MLP then works on each position.

Lesson 07. Pre-LayerNorm, as in GPT-2 and nanoGPT:
    x = x + attention(ln1(x))
    x = x + mlp(ln2(x))

``TransformerConfig`` holds the settings; ``TransformerBlock`` is one block, ``TransformerStack`` is
``n_layers`` blocks and a final LayerNorm. x is ``(batch, time, d_model)`` throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_lib.models.attention import MultiHeadAttention, check_layer_input, require_heads
from course_lib.validation import (config_from, require_flag, require_int, require_number, settings_signature,
                                   weights_dtype)


@dataclass
class TransformerConfig:
    """The settings of a stack of transformer blocks, checked when made (a TypeError for the wrong kind of value,
    a ValueError for one out of range).

    ``residual`` and ``norm`` exist to measure what each part is for (lesson 07); a real model keeps both on.
    ``mlp=False`` leaves each block's MLP out: an attention-only model, the kind lesson 14 trains to find induction heads.
    """

    d_model: int  # features per position
    n_heads: int  # attention heads; each gets d_model / n_heads features
    n_layers: int = 1  # blocks in a TransformerStack (a TransformerBlock is one)
    d_ff: int | None = None  # the MLP's hidden width; None: 4 * d_model
    dropout: float = 0.0
    residual: bool = True  # False drops the skip connections: x = attention(ln1(x)), then x = mlp(ln2(x))
    norm: bool = True  # False puts nn.Identity() where each LayerNorm stands
    mlp: bool = True  # False: no MLP (nor its LayerNorm) in any block; x = x + attention(ln1(x)) only

    def __post_init__(self):
        self.d_model, self.n_heads = require_heads(self.d_model, self.n_heads)
        self.n_layers = require_int(self.n_layers, "n_layers", minimum=1)
        # None means "the usual 4 x"; 0 is refused, not taken for the default
        self.d_ff = 4 * self.d_model if self.d_ff is None else require_int(self.d_ff, "d_ff", minimum=1)
        self.dropout = require_number(self.dropout, "dropout", minimum=0, below=1)
        self.residual = require_flag(self.residual, "residual")
        self.norm = require_flag(self.norm, "norm")
        self.mlp = require_flag(self.mlp, "mlp")


def block_config(d_model: int, n_heads: int, d_ff: int | None = None, dropout: float = 0.0, residual: bool = True,
                 norm: bool = True, mlp: bool = True) -> TransformerConfig:
    """``TransformerBlock``'s arguments, in its own order (d_ff third: one block has no n_layers), as a config."""
    return TransformerConfig(d_model, n_heads, d_ff=d_ff, dropout=dropout, residual=residual, norm=norm, mlp=mlp)


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
        return self.drop(self.proj(self.act(self.fc(x))))  # (B, T, d_model) -> (B, T, d_ff) -> (B, T, d_model)


def layer_norm_or_identity(d_model: int, norm: bool) -> nn.Module:
    """``nn.LayerNorm(d_model)``, or ``nn.Identity()`` for a model built without normalisation."""
    return nn.LayerNorm(d_model) if norm else nn.Identity()


class TransformerBlock(nn.Module):
    """One pre-LayerNorm block: ``(batch, time, d_model)`` -> ``(batch, time, d_model)``.

    ``TransformerBlock(config)`` or ``TransformerBlock(d_model, n_heads, d_ff=None, dropout=0.0, residual=True,
    norm=True, mlp=True)``: see ``TransformerConfig``.

    ``forward(x, mask=None, return_attention=False)``; mask as in ``MultiHeadAttention`` (True = may
    attend). With ``return_attention=True`` it returns ``(x, weights (batch, heads, query, key))``.
    ``check=False`` skips the checks of x and mask: for a parent module that checked them once for all its layers.
    """

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.config = config = config_from(TransformerConfig, args, kwargs, build=block_config)
        self.residual, self.norm = config.residual, config.norm
        self.ln1 = layer_norm_or_identity(config.d_model, config.norm)
        self.attn = MultiHeadAttention(config.d_model, config.n_heads, dropout=config.dropout)
        # an attention-only block (mlp=False) has neither: its state_dict holds only what it uses
        self.ln2 = layer_norm_or_identity(config.d_model, config.norm) if config.mlp else None
        self.mlp = MLP(config.d_model, config.d_ff, config.dropout) if config.mlp else None
        self.drop = nn.Dropout(config.dropout)

    def extra_repr(self) -> str:
        switched_off = [name for name in ("residual", "norm") if not getattr(self, name)]
        switched_off += [] if self.config.mlp else ["mlp"]
        return ", ".join(f"{name}=False" for name in switched_off)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, return_attention: bool = False, *,
                check: bool = True):
        if check:
            check_layer_input(x, mask, self.attn.d_model, self.attn.n_heads, weights_dtype(self))
        # the block checked x and mask (or its parent did): the attention need not look again
        attended, weights = self.attn(self.ln1(x), mask, need_weights=return_attention, check=False)  # (B, T, D)
        if self.residual:
            x = x + self.drop(attended)
            if self.mlp is not None:
                x = x + self.mlp(self.ln2(x))
        else:
            x = self.drop(attended)
            if self.mlp is not None:
                x = self.mlp(self.ln2(x))
        return (x, weights) if return_attention else x  # x (B, T, D), weights (B, H, T, T)

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


TransformerBlock.__signature__ = settings_signature(block_config)  # help() shows the settings, not *args


class TransformerStack(nn.Module):
    """``n_layers`` blocks and a final LayerNorm: ``(batch, time, d_model)`` -> same shape.

    ``TransformerStack(config)`` or ``TransformerStack(d_model, n_heads, n_layers, d_ff=None, dropout=0.0,
    residual=True, norm=True, mlp=True)``: see ``TransformerConfig``. ``residual``, ``norm`` and ``mlp`` go to every block;
    ``norm=False`` also replaces the final LayerNorm by ``nn.Identity()``.

    With ``return_attention=True`` also returns a list of per-layer weights ``(batch, heads, query, key)``.
    x and mask are checked once here, not again in each block (``check=False``: the caller checked them).
    """

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.config = config = config_from(TransformerConfig, args, kwargs)
        self.d_model = config.d_model
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layers))
        self.ln_f = layer_norm_or_identity(config.d_model, config.norm)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, return_attention: bool = False, *,
                check: bool = True):
        if check:
            check_layer_input(x, mask, self.d_model, self.config.n_heads, weights_dtype(self))
        attention = []
        for block in self.blocks:
            if return_attention:
                x, weights = block(x, mask, return_attention=True, check=False)  # weights (B, H, T, T)
                attention.append(weights)
            else:
                x = block(x, mask, check=False)  # (B, T, D)
        x = self.ln_f(x)
        return (x, attention) if return_attention else x


TransformerStack.__signature__ = settings_signature(TransformerConfig)  # help() shows the settings, not *args


def init_weights(module: nn.Module) -> None:
    """GPT-2's scale for weights (normal, std 0.02, as in nanoGPT); biases keep PyTorch's default.
    Use ``model.apply(init_weights)``.

    Measured on the reference model (``course_lib.experiments.reference``): with zeroed biases it learns agreement
    just as well, but a head that looks from the verb to its subject emerged in only 3 of 5 seeds; with
    this initialisation, in 6 of 6.
    """
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
