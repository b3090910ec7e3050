"""data=text: byte tokens, blocks shifted by one, splits by position, the errors on data.path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from declarative_train.data import PythonSourceText, TextData
from declarative_train.data.module import BatchFetchingTensorDataset
from declarative_train.errors import ArgumentError, MissingExtra
from declarative_train.utils.extras import try_import


def _tensors(data: TextData, split: str) -> tuple[torch.Tensor, ...]:
    dataset = data.datasets[split]
    assert isinstance(dataset, TensorDataset)
    return dataset.tensors



def _file(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "corpus.txt"
    path.write_bytes(data)
    return str(path)


def test_bytes_cut_into_blocks_with_targets_shifted_by_one(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4  # 1024 ids
    text = TextData(path=_file(tmp_path, data), block_size=10, val_fraction=0.1, test_fraction=0.2)
    assert text.data_shapes() == {"vocab_size": 256, "block_size": 10}
    ids = torch.tensor(list(data))
    n_test, n_val = int(1024 * 0.2), int(1024 * 0.1)
    starts = {"train": 0, "val": 1024 - n_test - n_val, "test": 1024 - n_test}
    lengths = {"train": 1024 - n_test - n_val, "val": n_val, "test": n_test}
    for split, start in starts.items():
        inputs, targets = _tensors(text, split)
        count = (lengths[split] - 1) // 10
        assert inputs.shape == targets.shape == (count, 10) and inputs.dtype == torch.long
        torch.testing.assert_close(inputs.flatten(), ids[start:start + count * 10])
        torch.testing.assert_close(targets.flatten(), ids[start + 1:start + count * 10 + 1])


def test_the_loader_fetches_whole_batches_and_shuffles_train(tmp_path: Path) -> None:
    text = TextData(path=_file(tmp_path, bytes(range(200)) * 5), block_size=8, batch_size=4)
    text.setup()
    loader = text.dataloader("train", shuffle=True, generator=torch.Generator().manual_seed(0))
    assert isinstance(loader.dataset, BatchFetchingTensorDataset)
    inputs, targets = next(iter(loader))
    assert inputs.shape == targets.shape == (4, 8)
    torch.testing.assert_close(inputs[:, 1:], targets[:, :-1])
    first = torch.cat([batch[0][:, 0] for batch in loader])
    assert not torch.equal(first, _tensors(text, "train")[0][:, 0])  # shuffled
    assert text.has_split("predict")  # falls back to test


def test_a_zero_fraction_leaves_the_split_out(tmp_path: Path) -> None:
    text = TextData(path=_file(tmp_path, b"abcdefgh" * 10), block_size=4, val_fraction=0.0, test_fraction=0.0)
    text.setup()
    assert set(text.datasets) == {"train"}


@pytest.mark.parametrize(("content", "message"), [
    (None, "does not exist"),
    (b"", "is empty"),
    (b"x" * 40, "its val split holds 4 of its 40 tokens, fewer than one block"),
])
def test_missing_empty_and_short_files_name_path(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = str(tmp_path / "none.txt") if content is None else _file(tmp_path, content)
    with pytest.raises(ArgumentError, match=message) as info:
        TextData(path=path, block_size=8).data_shapes()
    assert info.value.argument == "path"


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match="is not a file"):
        TextData(path=str(tmp_path)).setup()


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"block_size": 0}, "block_size"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, "val_fraction"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_arguments(tmp_path: Path, kwargs: dict, argument: str) -> None:
    with pytest.raises(ArgumentError) as info:
        TextData(path="x.txt", **kwargs)
    assert info.value.argument == argument


def test_a_vocab_size_that_contradicts_the_data(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match="vocab_size is 300 in the config, but the data has 256"):
        TextData(path=_file(tmp_path, b"a" * 100), block_size=4, vocab_size=300).setup()


@pytest.mark.skipif(try_import("tokenizers")[0] is not None, reason="tokenizers is installed here")
def test_a_tokenizer_without_the_package_names_the_extra(tmp_path: Path) -> None:
    text = TextData(path=_file(tmp_path, b"a" * 100), block_size=4, tokenizer=str(tmp_path / "tokenizer.json"))
    with pytest.raises(MissingExtra, match=r"pip install 'declarative_train\[text\]'"):
        text.setup()


@pytest.mark.skipif(try_import("tokenizers")[0] is None, reason="tokenizers is not installed")
def test_a_tokenizer_file_encodes_the_text(tmp_path: Path) -> None:  # pragma: no cover - needs the extra
    import tokenizers

    vocab = {"[UNK]": 0, "a": 1, "b": 2, "c": 3}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    text = TextData(path=_file(tmp_path, b"a b c d " * 20), block_size=4, tokenizer=str(tmp_path / "tokenizer.json"))
    assert text.data_shapes()["vocab_size"] == 4
    assert _tensors(text, "train")[0][0].tolist() == [1, 2, 3, 0]
    with pytest.raises(ArgumentError, match="tokenizer"):
        TextData(path=_file(tmp_path, b"a" * 100), tokenizer=str(tmp_path / "missing.json")).setup()


def test_python_source_text_is_written_once(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "src.txt"
    text = PythonSourceText(path=str(path), modules=["textwrap", "bisect"], block_size=32)
    text.setup()
    content = path.read_text()
    assert "# ---- textwrap" in content and "def insort" in content
    assert text.vocab_size == 256 and len(_tensors(text, "train")[0]) > 100
    path.write_text("kept " * 200)
    again = PythonSourceText(path=str(path), block_size=8)
    again.setup()
    assert path.read_text() == "kept " * 200
    with pytest.raises(ArgumentError, match="'no_such_module' does not import"):
        PythonSourceText(path=str(tmp_path / "x.txt"), modules=["no_such_module"]).setup()
