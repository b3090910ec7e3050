"""Small reference networks: :class:`MLP`, :class:`CNN`, :class:`Linear`."""

from declarative_train.models.nets import CNN, MLP, Linear

__all__ = ["CNN", "MLP", "Linear"]
