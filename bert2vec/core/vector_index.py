"""How the S3 Vectors index is named in the environment, shared by the bulk path and ``/search``.

Kept apart so the encode handler does not import the bulk path's modules just to read a name.
"""

from __future__ import annotations


def vector_bucket_name(value: str) -> str:
    """``VECTOR_BUCKET`` as a name; an ARN (what CloudFormation's Ref gives) is reduced to its name."""
    return value.split(":bucket/", 1)[1].split("/", 1)[0] if value.startswith("arn:") else value
