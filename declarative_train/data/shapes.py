"""What a data module can tell a model config: the shapes it found in the data.

A data module that knows values the model needs (the number of input features, of classes, ...)
only once it has looked at its data implements :class:`ReportsShapes`. The builder asks it before
the model is built and fills the ``data.<key>`` config values left null, so model configs keep
``${data.num_features}`` and ``${data.num_classes}`` and the user writes no number the data knows.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from declarative_train.errors import ArgumentError

#: Keys a data module may report, and what each means.
SHAPE_KEYS = {
    "num_features": "input features per sample (after encoding)",
    "num_classes": "classes of a classification target",
    "class_names": "class names in class-index order",
    "image_shape": "one sample's (C, H, W)",
    "target_width": "values per sample of a regression target",
    "task": "classification or regression",
    "vocab_size": "token ids a language model embeds (data=text)",
}


@runtime_checkable
class ReportsShapes(Protocol):
    """A data module that can report what it found in its data."""

    def data_shapes(self) -> dict[str, Any]:
        """The values of :data:`SHAPE_KEYS` this module knows (reading its data if needed)."""
        ...


def adopt_shapes(module: Any, found: dict[str, Any], owner: str, names: tuple[str, ...],
                 holder: str = "the data has") -> None:
    """Set ``module``'s shape attributes ``names`` to what its data holds (``found``).

    A value given to the constructor (a worker's resolved config, a file that changed since the
    launching process read it) must equal the data's: otherwise an :class:`ArgumentError` naming
    the argument and both values.
    """
    for name in names:
        given, value = getattr(module, name), found.get(name)
        if isinstance(given, tuple):
            given = list(given)
        if given is not None and value is not None and given != value:
            raise ArgumentError(owner, name, f"is {given!r} in the config, but {holder} {value!r}")
        if value is not None:
            setattr(module, name, value)
