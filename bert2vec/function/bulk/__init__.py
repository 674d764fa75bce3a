"""Bulk encoding: read text files (txt/jsonl/csv, optionally gzipped), encode them, write vector files.

``readers`` and ``writers`` are pure (no AWS, no TensorFlow) so the S3-triggered Lambda and the
local CLI share exactly the same parsing and output rules, and both can be unit-tested on bytes.
"""
