"""Distribution: ranks, collectives, samplers and model wrapping for one or many processes."""

from declarative_train.distributed.base import Distribution, SingleProcess

__all__ = ["Distribution", "SingleProcess"]
