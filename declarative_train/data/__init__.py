"""Data modules: sklearn's bundled digits and diabetes (offline), synthetic data, table files,
image folders, Hugging Face datasets on disk and text files for language models."""

from declarative_train.data.drawn_shapes import DrawnShapes
from declarative_train.data.hf import HFData, HFDigits
from declarative_train.data.image_folder import ImageFolderData
from declarative_train.data.module import DataModule, TensorDataModule
from declarative_train.data.python_text import PythonSourceText
from declarative_train.data.shapes import SHAPE_KEYS, ReportsShapes
from declarative_train.data.sklearn_data import Diabetes, Digits
from declarative_train.data.sklearn_table import SklearnTable
from declarative_train.data.synthetic import Synthetic
from declarative_train.data.table import TableData
from declarative_train.data.text import TextData

__all__ = ["SHAPE_KEYS", "DataModule", "Diabetes", "Digits", "DrawnShapes", "HFData", "HFDigits", "ImageFolderData",
           "PythonSourceText", "ReportsShapes", "SklearnTable", "Synthetic",
           "TableData", "TensorDataModule", "TextData"]
