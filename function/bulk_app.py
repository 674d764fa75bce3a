"""``function.bulk_app.*`` for the image and SAM: the handlers of :mod:`bert2vec.bulk.app`."""

from bert2vec.bulk.app import s3_handler, sqs_handler

__all__ = ["s3_handler", "sqs_handler"]
