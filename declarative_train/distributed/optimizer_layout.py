"""The two layouts of an optimizer's state dict, and the conversions between them.

``optimizer.state_dict()`` names parameters by integer ids (their positions in the param groups);
``torch.distributed.checkpoint.state_dict.get_optimizer_state_dict`` (and so DCP folders) by
their fully qualified names in the model. Plain dict work, no torch.distributed import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def is_name_keyed(state: Any) -> bool:
    """Whether an optimizer state dict names its parameters (``get_optimizer_state_dict``'s layout)."""
    groups = state.get("param_groups") if isinstance(state, Mapping) else None
    if not isinstance(groups, list):
        return False
    return any(isinstance(p, str) for group in groups for p in group.get("params", []))


def by_index(state: Mapping[str, Any], names: Sequence[str] | None = None) -> dict[str, Any]:
    """A name-keyed optimizer state dict in ``optimizer.state_dict()``'s integer-id layout.

    ``names``: every parameter's name in id order (default: the order the param groups list them).
    Tensors are shared, not copied.
    """
    if names is None:
        names = [name for group in state["param_groups"] for name in group["params"]]
    index = {name: i for i, name in enumerate(names)}
    return {"state": {index[name]: value for name, value in state["state"].items()},
            "param_groups": [{**group, "params": [index[n] for n in group["params"]]}
                             for group in state["param_groups"]]}


def by_name(state: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The inverse of :func:`by_index`: ``names`` gives each integer id's parameter name."""
    return {"state": {names[int(i)]: value for i, value in state["state"].items()},
            "param_groups": [{**group, "params": [names[int(i)] for i in group["params"]]}
                             for group in state["param_groups"]]}
