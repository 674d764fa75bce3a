"""The S3-triggered bulk path: planner -> SQS slices -> workers -> commit -> manifest, the per-object
ledger, the store and the S3 Vectors target. Never imports the HTTP edge."""
