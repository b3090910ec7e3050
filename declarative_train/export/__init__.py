"""Export a trained module to ONNX, a ``torch.export`` program, TorchScript or safetensors.

``formats`` knows how each format is written and read back; ``model_export`` writes a file under a
temporary name, checks it against eager PyTorch in its own runtime, and only then names it.
``dtrain-export`` (``jobs/export.py``) builds the module from a checkpoint and calls this.
"""

from declarative_train.export.formats import FORMATS, Format
from declarative_train.export.model_export import ExportReport, export_model

__all__ = ["FORMATS", "ExportReport", "Format", "export_model"]
