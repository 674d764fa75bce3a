"""``function.app.*`` for the image and SAM: the handlers of :mod:`bert2vec.function.app`."""

from bert2vec.function.app import handler

__all__ = ["handler"]
