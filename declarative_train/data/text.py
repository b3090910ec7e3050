"""``data=text``: a local text file as fixed-length blocks of token ids for a language model.

The file is read as bytes (token ids 0..255, ``vocab_size`` 256) or, with ``tokenizer`` set, as
UTF-8 text encoded by a Hugging Face ``tokenizers`` file (``tokenizer.json``). The ids are split
by position (the last ``test_fraction`` is the test split, the ``val_fraction`` before it the
validation split, the rest trains) and each split is cut into blocks of ``block_size`` ids: the
input is a block, the target the same block shifted by one id. Blocks are plain tensors, so the
loader fetches a whole batch with one indexing; the executor shuffles the train blocks.

:meth:`TextData.data_shapes` reports ``vocab_size`` (so ``model=gpt`` reads
``${data.vocab_size}``); a missing, empty or too short file is an :class:`ArgumentError` on
``path``, which ``dtrain`` reports as exit 2 before training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import TensorDataset

from declarative_train.data.module import DataModule, check_split_fractions
from declarative_train.data.shapes import adopt_shapes
from declarative_train.errors import ArgumentError, MissingExtra
from declarative_train.utils.extras import try_import

OWNER = "TextData"
BYTE_VOCAB = 256


class TextData(DataModule):
    """Blocks of ``block_size`` token ids from the text file ``path`` (see the module docstring).

    Args:
        path: the text file.
        block_size: ids per block (the model's context length).
        tokenizer: a ``tokenizers`` JSON file (``pip install 'declarative_train[text]'``);
            ``None``: bytes.
        val_fraction: the share of the ids, before the test part, that validates.
        test_fraction: the share of the ids at the end of the file that tests.
        vocab_size: the number of token ids; ``None``: from the tokenizer (256 for bytes).
        **loader: :class:`DataModule`'s loader settings (``batch_size``, ``num_workers``, ...).
    """

    def __init__(
        self, *, path: str, block_size: int = 128, tokenizer: str | None = None, val_fraction: float = 0.1,
        test_fraction: float = 0.1, vocab_size: int | None = None, **loader: Any,
    ) -> None:
        super().__init__(**loader)
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ArgumentError(OWNER, "block_size", f"must be an int >= 1, got {block_size!r}")
        check_split_fractions(OWNER, val_fraction, test_fraction)
        self.path, self.block_size, self.tokenizer = path, block_size, tokenizer
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.vocab_size = vocab_size

    def data_shapes(self) -> dict[str, Any]:
        """``vocab_size`` and ``block_size``; reads and checks the file when not set up yet."""
        self.setup()
        return {"vocab_size": self.vocab_size, "block_size": self.block_size}

    def setup(self) -> None:
        if self.datasets:
            return
        ids, vocab_size = self._token_ids()
        adopt_shapes(self, {"vocab_size": vocab_size}, OWNER, ("vocab_size",))
        self.datasets = {split: blocks(part, self.block_size) for split, part in self._split(ids).items()}

    def _token_ids(self) -> tuple[torch.Tensor, int]:
        """All of the file's token ids (int64) and the vocabulary size."""
        file = Path(self.path)
        if not file.is_file():
            raise ArgumentError(OWNER, "path", f"{str(file)!r} is not a file" if file.exists()
                                else f"{str(file)!r} does not exist")
        data = file.read_bytes()
        if not data:
            raise ArgumentError(OWNER, "path", f"{str(file)!r} is empty")
        if self.tokenizer is None:
            return torch.frombuffer(bytearray(data), dtype=torch.uint8).long(), BYTE_VOCAB
        tokenizer = load_tokenizer(self.tokenizer)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ArgumentError(OWNER, "path", f"{str(file)!r} is not UTF-8 text (byte {exc.start}), which a "
                                               f"tokenizer needs; without data.tokenizer it is read as bytes") from None
        return torch.tensor(tokenizer.encode(text).ids, dtype=torch.long), int(tokenizer.get_vocab_size())

    def _split(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """``train``, ``val``, ``test`` by position; each split that has a share holds one block or more."""
        total = len(ids)
        n_test, n_val = int(total * self.test_fraction), int(total * self.val_fraction)
        n_train = total - n_val - n_test
        parts = {"train": (ids[:n_train], 1.0), "val": (ids[n_train:n_train + n_val], self.val_fraction),
                 "test": (ids[total - n_test:], self.test_fraction)}
        for split, (part, share) in parts.items():
            if share > 0 and len(part) < self.block_size + 1:
                raise ArgumentError(OWNER, "path", f"{str(self.path)!r} is too short: its {split} split holds "
                                                   f"{len(part)} of its {total} tokens, fewer than one block of "
                                                   f"block_size + 1 = {self.block_size + 1} (a longer file, a "
                                                   f"smaller data.block_size or larger fractions)")
        return {split: part for split, (part, share) in parts.items() if share > 0}


def blocks(ids: torch.Tensor, block_size: int) -> TensorDataset:
    """``(inputs, targets)`` of shape ``[n, block_size]``: consecutive blocks, targets shifted by one."""
    count = (len(ids) - 1) // block_size
    used = count * block_size
    return TensorDataset(ids[:used].view(count, block_size), ids[1:used + 1].view(count, block_size))


def load_tokenizer(path: str) -> Any:
    """A ``tokenizers.Tokenizer`` from the JSON file ``path`` (``MissingExtra`` without the package)."""
    module, reason = try_import("tokenizers")
    if module is None:
        raise MissingExtra("data.tokenizer", "tokenizers", "text", reason)
    if not Path(path).is_file():
        raise ArgumentError(OWNER, "tokenizer", f"{path!r} does not exist")
    try:
        return module.Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust side raises its own Exception type on a bad file
        raise ArgumentError(OWNER, "tokenizer", f"{path!r} is not a tokenizers JSON file: {exc}") from None
