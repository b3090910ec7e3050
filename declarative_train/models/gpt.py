"""A small decoder-only transformer language model (nanoGPT's layout).

Token and position embeddings, ``n_layer`` :class:`TransformerBlock` s (pre-LayerNorm causal
self-attention through ``scaled_dot_product_attention`` and a 4x GELU MLP), a final LayerNorm and
a head that shares its weight with the token embedding. The blocks hold no state besides their
parameters, so they can be sharded (FSDP2 ``fully_shard``) and recomputed in backward (activation
checkpointing) one block at a time; both find them by the class name ``TransformerBlock``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from declarative_train.errors import ArgumentError

OWNER = "GPT"


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which a position attends to itself and earlier positions."""

    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.dropout = dropout
        self.proj_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        # (B, T, 3C) -> three (B, heads, T, C/heads)
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_head, width // self.n_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )
        return self.proj_dropout(self.proj(y.transpose(1, 2).reshape(batch, length, width)))


class MLPBlock(nn.Module):
    """The position-wise feed-forward part: ``n_embd -> 4 n_embd -> n_embd`` with GELU."""

    def __init__(self, n_embd: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class TransformerBlock(nn.Module):
    """One pre-LayerNorm block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLPBlock(n_embd, dropout, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Decoder-only transformer: ``forward(idx[B, T]) -> logits[B, T, vocab_size]``.

    Args:
        vocab_size: number of token ids (256 for bytes).
        block_size: the longest sequence (the number of learned positions).
        n_layer: transformer blocks (kept in ``self.blocks``).
        n_head: attention heads; must divide ``n_embd``.
        n_embd: width of the residual stream.
        dropout: dropout on embeddings, attention weights and residual branches.
        bias: biases in the linear layers and LayerNorms.

    Weights start as in GPT-2: normal(0, 0.02), the residual projections scaled by
    ``1/sqrt(2 n_layer)``, biases zero. The output head is the token embedding's weight.

    Example:
        >>> model = GPT(vocab_size=256, block_size=8, n_layer=1, n_head=2, n_embd=16)
        >>> model(torch.zeros(2, 8, dtype=torch.long)).shape
        torch.Size([2, 8, 256])
    """

    def __init__(
        self, vocab_size: int, block_size: int, n_layer: int = 4, n_head: int = 4, n_embd: int = 128,
        dropout: float = 0.0, bias: bool = True,
    ) -> None:
        super().__init__()
        _check_arguments(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                         n_embd=n_embd, dropout=dropout)
        self.vocab_size, self.block_size = vocab_size, block_size
        self.tok_emb = nn.Embedding(vocab_size, n_embd)
        self.pos_emb = nn.Embedding(block_size, n_embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(n_embd, n_head, dropout, bias) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # tied: one matrix reads and writes tokens
        self._init_weights(n_layer)

    def _init_weights(self, n_layer: int) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
        for block in self.blocks:
            assert isinstance(block, TransformerBlock)
            for proj in (block.attn.proj, block.mlp.proj):  # the residual stream's variance stays ~1
                nn.init.normal_(proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        length = idx.shape[-1]
        if length > self.block_size:
            raise ValueError(f"GPT: a sequence of {length} tokens is longer than block_size={self.block_size}")
        positions = torch.arange(length, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(positions))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def _check_arguments(*, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int,
                     dropout: float) -> None:
    for argument, value in (("vocab_size", vocab_size), ("block_size", block_size), ("n_layer", n_layer),
                            ("n_head", n_head), ("n_embd", n_embd)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArgumentError(OWNER, argument, f"must be an int >= 1, got {value!r}")
    if n_embd % n_head:
        raise ArgumentError(OWNER, "n_embd", f"must be divisible by n_head={n_head}, got {n_embd}")
    if not 0 <= dropout < 1:
        raise ArgumentError(OWNER, "dropout", f"must be in [0, 1), got {dropout!r}")
