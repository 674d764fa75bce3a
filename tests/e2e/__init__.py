"""End-to-end tests: the image's command run as a local process against a local Lambda Runtime API."""
