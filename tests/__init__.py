"""The test suite of pakat-logging."""
