"""The Lambda image's entry points: the handler names of its ``CMD`` and of template.yaml
(``function.app.handler``, ``function.bulk_app.s3_handler``...) stay as deployed. Each module
re-exports its handlers from the package (:mod:`bert2vec.http.app`, :mod:`bert2vec.bulk.app`), where the code lives, so the pip package
installs one namespace (``bert2vec``) and the image runs exactly the same code."""
