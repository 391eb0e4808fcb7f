"""The version of pakat-logging, read by the build and the User-Agent."""

__version__ = "0.1.0"
