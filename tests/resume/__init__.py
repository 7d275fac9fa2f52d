"""Resume, retry, dedup, structured-output and estimate tests."""
