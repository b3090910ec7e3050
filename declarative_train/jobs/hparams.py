"""What a run logs as hyperparameters for TensorBoard's HPARAMS tab."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from declarative_train.utils.tree import flatten_config_dict


def run_hparams(cfg: DictConfig) -> dict[str, Any]:
    """A sweep job's own overrides (``sweep.job_overrides``); otherwise the flattened config.

    Overrides are what varies across a sweep, so the HPARAMS tab gets one readable column per
    swept key instead of every key of the config.
    """
    overrides = list(OmegaConf.select(cfg, "sweep.job_overrides", default=None) or [])
    return overrides_to_hparams(overrides) if overrides else flatten_config(cfg)


def overrides_to_hparams(overrides: list[str]) -> dict[str, Any]:
    """``["optimizer.lr=0.01", "model=cnn"]`` -> ``{"optimizer.lr": 0.01, "model": "cnn"}``.

    Numbers stay numbers (sortable columns in TensorBoard); everything else is kept as written.
    """
    params: dict[str, Any] = {}
    for override in overrides:
        key, sep, text = override.partition("=")
        if sep:
            params[key.lstrip("+~")] = _scalar(text)
    return params


def _scalar(text: str) -> int | float | bool | str:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def flatten_config(cfg: DictConfig) -> dict[str, Any]:
    """The config flattened to ``a.b.c: value``, without paths and sweep settings."""
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    return flatten_config_dict(container)
