"""Small reference networks (:class:`MLP`, :class:`CNN`, :class:`Linear`), a small transformer
language model (:class:`GPT`) and library
classifiers by name (:class:`TorchvisionNet`, :class:`TimmNet`; torchvision/timm imported when built)."""

from declarative_train.models.gpt import GPT, TransformerBlock
from declarative_train.models.nets import CNN, MLP, Linear
from declarative_train.models.vision import TimmNet, TorchvisionNet

__all__ = ["CNN", "GPT", "MLP", "Linear", "TimmNet", "TorchvisionNet", "TransformerBlock"]
