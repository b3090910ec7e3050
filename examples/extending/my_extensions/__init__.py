"""A package of your own for dtrain: a task, a data module, a callback, a metric and a logger.

Run from ``examples/extending`` (see docs/extending.md)::

    PYTHONPATH=. dtrain --config-dir conf experiment=moons user_packages=[my_extensions]
"""
