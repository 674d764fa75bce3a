"""Lambda's synchronous payload limit, in one place at the HTTP edge.

Lambda refuses a request or a response over 6 MB on a synchronous invoke; the encode service
behind the edge knows nothing of Lambda. The handler checks its answers against this limit (so a
big answer is our ``response_too_large`` error, not the runtime's payload error after all the work),
and ``bert-encode --serve`` refuses request bodies over it, as Lambda would before the handler runs.
"""

from __future__ import annotations

from bert2vec.core.errors import PayloadTooLargeError

LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
#: Room left for what API Gateway wraps around a response body (status, headers, JSON envelope).
ENVELOPE_BYTES = 16 * 1024


def check_payload_size(body: str) -> str:
    """Refuse a response Lambda could not return synchronously (6 MB), pointing at the S3 path."""
    size = len(body.encode("utf-8"))
    if size > LAMBDA_SYNC_PAYLOAD_BYTES - ENVELOPE_BYTES:
        raise PayloadTooLargeError(
            f"the response would be {size} bytes, over Lambda's 6 MB synchronous limit; send fewer "
            'texts per request, use "encoding_format": "base64", or use the S3 bulk path'
        )
    return body
