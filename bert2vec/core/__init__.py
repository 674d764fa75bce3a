"""The core: the SavedModel contract, settings, errors, the encoder, the long-text policy and
start-up. No AWS, no HTTP, no file formats: everything else builds on it."""
