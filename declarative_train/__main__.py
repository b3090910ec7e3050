"""``python -m declarative_train`` is ``dtrain``."""

from declarative_train.cli import train_main

if __name__ == "__main__":
    train_main()
