"""``torch.distributed.checkpoint`` (DCP) with nothing unpickled that a folder could abuse.

DCP itself unpickles twice: the folder's ``.metadata`` with ``pickle.load``, and every non-tensor
value with ``torch.load(weights_only=False)``. Here neither can run code:

- DCP is only ever given tensors. :func:`split_tensors` takes them out of the state (each under a
  key made from its path); the rest, plain Python values, is stored by rank 0 as a sealed file
  (``checkpoint.file``), which loads with ``torch.load(weights_only=True)``. :func:`graft` puts
  the tensors back.
- :class:`SafeReader` unpickles ``.metadata`` with an allow-list of the few classes DCP's metadata
  consists of (no byte-stream entries), then checks that every shard it points to is a file of
  the manifest. :class:`SafeLoadPlanner` refuses byte-stream entries, should one get through.
  The shards themselves hold tensors, which DCP loads with ``weights_only=True``.
"""

from __future__ import annotations

import io
import json
import pathlib
import pickle
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter
from torch.distributed.checkpoint import filesystem as dcp_filesystem
from torch.distributed.checkpoint import metadata as dcp_metadata
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.planner import ReadItem, SavePlan, SavePlanner
from torch.distributed.checkpoint.storage import WriteResult
from torch.futures import Future

from declarative_train.checkpoint import sharded_manifest as manifest
from declarative_train.errors import CheckpointError

Path_ = tuple[Any, ...]

#: The classes a DCP ``.metadata`` file may name, and nothing else.
_METADATA_CLASSES = {
    ("torch.distributed.checkpoint.metadata", name): getattr(dcp_metadata, name)
    for name in ("Metadata", "TensorStorageMetadata", "ChunkStorageMetadata", "TensorProperties",
                 "MetadataIndex", "StorageMeta", "_MEM_FORMAT_ENCODING")
} | {
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"): dcp_filesystem._StorageInfo,
    ("torch", "Size"): torch.Size,
    ("torch.serialization", "_get_layout"): torch.serialization._get_layout,
    ("pathlib", "PosixPath"): pathlib.PurePosixPath,  # the writer's path, kept as a harmless pure path
    ("pathlib", "WindowsPath"): pathlib.PureWindowsPath,
    ("pathlib._local", "PosixPath"): pathlib.PurePosixPath,  # Python >= 3.13
    ("pathlib._local", "WindowsPath"): pathlib.PureWindowsPath,
}


def tensor_key(path: Path_) -> str:
    """The DCP key of the tensor at ``path`` (unambiguous: a JSON list of the path's keys)."""
    return json.dumps(list(path), default=repr)


def split_tensors(state: Any) -> tuple[Any, dict[Path_, torch.Tensor]]:
    """``state`` without its tensors (``None`` in their place), and the tensors by path.

    Walks mappings, lists and tuples (a dict keeps its type and attributes, such as a module
    state dict's ``_metadata``); anything else is a leaf, kept in the skeleton as it is.
    """
    tensors: dict[Path_, torch.Tensor] = {}

    def walk(node: Any, path: Path_) -> Any:
        if isinstance(node, torch.Tensor):
            tensors[path] = node
            return None
        return _rebuild(node, path, walk)

    return walk(state, ()), tensors


def graft(skeleton: Any, tensors: Mapping[Path_, Any]) -> Any:
    """``skeleton`` with ``tensors[path]`` at each of their paths (the inverse of :func:`split_tensors`)."""

    def walk(node: Any, path: Path_) -> Any:
        return tensors[path] if path in tensors else _rebuild(node, path, walk)

    return walk(skeleton, ())


def _rebuild(node: Any, path: Path_, walk: Callable[[Any, Path_], Any]) -> Any:
    """``node`` with ``walk(child, child_path)`` for each child; leaves as they are."""
    if isinstance(node, dict):
        out = type(node)((key, walk(value, (*path, key))) for key, value in node.items())
        if getattr(node, "__dict__", None):
            out.__dict__.update(node.__dict__)
        return out
    if isinstance(node, Mapping):
        return {key: walk(value, (*path, key)) for key, value in node.items()}
    if isinstance(node, (list, tuple)) and not hasattr(node, "_fields"):
        return type(node)(walk(value, (*path, i)) for i, value in enumerate(node))
    return node


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        allowed = _METADATA_CLASSES.get((module, name))
        if allowed is None and module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            allowed = getattr(torch, name)
        if allowed is None:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in checkpoint metadata")
        return allowed


class SafeReader(FileSystemReader):
    """A ``FileSystemReader`` that reads ``.metadata`` without running code (see the module doc).

    Args:
        path: the checkpoint folder, already verified against its manifest.
        files: the files of the manifest; every shard the metadata names must be one of them.
    """

    def __init__(self, path: Path, files: Collection[str]) -> None:
        super().__init__(path)
        self.folder = path
        self.files = set(files)

    def read_metadata(self, *args: Any, **kwargs: Any) -> dcp_metadata.Metadata:
        path = self.folder / ".metadata"
        try:
            with open(path, "rb") as handle:
                metadata = _MetadataUnpickler(handle).load()
        except Exception as exc:  # pickle raises many kinds for malformed or refused content
            raise CheckpointError(f"sharded checkpoint {path} cannot be loaded safely: "
                                  f"{type(exc).__name__}: {exc}") from None
        self._check(metadata, path)
        if metadata.storage_meta is None:
            metadata.storage_meta = dcp_metadata.StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata

    def _check(self, metadata: Any, path: Path) -> None:
        if not isinstance(metadata, dcp_metadata.Metadata) or not isinstance(metadata.storage_data, dict):
            raise CheckpointError(f"sharded checkpoint {path} is not DCP metadata")
        if not all(isinstance(md, dcp_metadata.TensorStorageMetadata)
                   for md in metadata.state_dict_metadata.values()):
            raise CheckpointError(f"sharded checkpoint {path} declares entries that are not tensors")
        for info in metadata.storage_data.values():
            if (not isinstance(info, dcp_filesystem._StorageInfo) or info.relative_path not in self.files
                    or info.transform_descriptors):
                name = getattr(info, "relative_path", info)
                raise CheckpointError(f"sharded checkpoint {path} points to {name!r}, "
                                      "which is not a shard of its manifest")


class SafeLoadPlanner(DefaultLoadPlanner):
    """DCP's load planner, refusing byte-stream (pickled) entries."""

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        raise CheckpointError(f"sharded checkpoint entry {read_item.dest_index.fqn!r} is pickled "
                              "data, which is never loaded")


class DigestingWriter(FileSystemWriter):
    """A ``FileSystemWriter`` whose ranks digest their own shards, and whose coordinator seals the folder.

    After DCP's ``.metadata``, the coordinator writes the plain values (``on_finish``) and the
    manifest. Errors raised here reach every rank through DCP's own error propagation.
    """

    def __init__(self, path: Path, rank: int, on_finish: Any) -> None:
        super().__init__(path, single_file_per_rank=True, sync_files=True, thread_count=1, overwrite=True)
        self.folder, self.writer_rank, self.on_finish = path, rank, on_finish

    def write_data(self, plan: SavePlan, planner: SavePlanner) -> Future[list[WriteResult]]:
        results = super().write_data(plan, planner).wait()
        manifest.write_rank_digests(self.folder, self.writer_rank, {r.storage_data.relative_path for r in results})
        done: Future[list[WriteResult]] = Future()
        done.set_result(results)
        return done

    def finish(self, metadata: dcp_metadata.Metadata, results: list[list[WriteResult]]) -> None:
        super().finish(metadata, results)
        self.on_finish()
        manifest.write_manifest(self.folder)
