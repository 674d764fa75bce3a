"""Text files in, vector files out: readers (txt/jsonl/csv, gzipped), writers (jsonl/parquet/npy), the
pipeline that encodes a stream of records, and the manifest. Pure (no AWS, no TensorFlow import of its own),
so the S3 bulk path and the local CLI share exactly the same parsing and output rules."""
