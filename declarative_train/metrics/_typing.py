"""``Unpack``, for ``**kwargs`` typed by a ``TypedDict`` (in :mod:`typing` from Python 3.11)."""

import sys

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover
    from typing_extensions import Unpack

__all__ = ["Unpack"]
