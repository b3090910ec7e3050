"""Package layout that pyproject.toml cannot express statically: the top-level ``conf/`` folder
ships inside the wheel as ``declarative_train/conf`` so an installed ``dtrain`` finds its configs."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["declarative_train", "declarative_train.*"]), "declarative_train.conf"],
    package_dir={"declarative_train.conf": "conf"},
    package_data={"declarative_train.conf": ["*.yaml", "*/*.yaml", "*/*/*.yaml"]},
)
