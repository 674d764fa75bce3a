"""``function.app.*`` for the image and SAM: the handlers of :mod:`bert2vec.http.app`."""

from bert2vec.http.app import handler

__all__ = ["handler"]
