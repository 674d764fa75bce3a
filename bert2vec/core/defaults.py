"""Every tunable default in one place, read by the code, the CLI and (through a test) the template.

Each value here is what the code does when its environment variable is unset. ``template.yaml``
parameter defaults and the configuration tables in ``docs/`` must agree with these values; a
fast test compares them, so a change here that is not made there fails ``make test-fast``.
"""

from __future__ import annotations

MIB = 1024 * 1024

# ---- encoding (core, HTTP API, CLI, bulk) ----------------------------------------------------
# Texts per model call. Measured best with one core per batch and batches side by side
# (docs/performance.md): larger batches pad more and leave cores idle on short requests.
BATCH_SIZE = 8
# Characters kept of one text before tokenising; a BERT window holds at most 512 wordpieces, so
# 100,000 characters is already far beyond what any exported model can see.
MAX_TEXT_CHARS = 100_000
# Texts over the model's max_seq_length wordpieces: truncate (flagged) | reject | chunk. LONG_TEXT on
# the bulk path (OVERLONG is its former name), "long_text" on HTTP and in Python, --long-text in the CLI.
LONG_TEXT = "truncate"
OVERLONG = LONG_TEXT  # the former name

# ---- logging and metrics (Powertools) --------------------------------------------------------
SERVICE_NAME = "bert2vec"  # POWERTOOLS_SERVICE_NAME of the HTTP handler
BULK_SERVICE_NAME = "bert2vec-bulk"  # ... of the S3 bulk handlers
METRICS_NAMESPACE = "Bert2Vec"  # POWERTOOLS_METRICS_NAMESPACE

# ---- HTTP API (bert2vec.http.service) -------------------------------------------------------------
MAX_TEXTS = 2048  # texts per request (OpenAI's own limit), within the two budgets below
# The per-request budget that keeps every accepted request well inside API Gateway's 29 s
# (docs/http-api.md, "Request budget", has the measurement): characters tokenised (after the
# MAX_TEXT_CHARS cut) and wordpieces the model runs (each text counts at most max_seq_length).
MAX_REQUEST_CHARS = 150_000
MAX_REQUEST_TOKENS = 8_192

# ---- bert-encode ------------------------------------------------------------------------------
MAX_BATCH_SIZE = 256  # --batch-size above this is capped: bigger batches only pad more and use more memory

# ---- S3 bulk path (bert2vec.bulk.config) -----------------------------------------------------
INPUT_PREFIX = "incoming/"
OUTPUT_PREFIX = "vectors/"
OUTPUT_FORMAT = "jsonl"
SHARD_BYTES = 32 * MIB  # objects larger than this fan out over SQS, one message per shard
SLICE_BYTES = 1 * MIB  # a slice: unit of work and of output parts for uncompressed .txt/.jsonl
SLICE_RECORDS = 5_000  # the same for streams that cannot be split by bytes (.gz, .csv)
CHUNK_BYTES, CHUNK_RECORDS = SLICE_BYTES, SLICE_RECORDS  # the former names
SHARD_MAX_RECEIVES = 3  # the shard queue's redrive maxReceiveCount
TIME_MARGIN_MS = 30_000  # hand work on this long before the Lambda deadline
WINDOW_TEXTS = 1_024  # texts per length-sorted encode window (bounds memory)
# Hand-offs one chain of shard messages may take before it ends in a failed manifest. Each hop
# runs up to the function timeout, so 1,000 hops of 15 minutes is ~10 days of work for one shard:
# far beyond any real input, yet a bug that hands off without progress stops within a bound.
MAX_HOPS = 1_000
# OUTPUT_FORMAT=s3vectors: a line's text is stored in its vector's metadata up to this size (S3
# Vectors allows 40 KB of metadata per vector; the template declares "text" non-filterable).
VECTOR_TEXT_MAX_BYTES = 8_192
# Where a .jsonl record / .csv row keeps its text and its (optional) id.
TEXT_FIELD = "text"
ID_FIELD = "id"
CSV_TEXT_COLUMN = "text"
CSV_ID_COLUMN = "id"
