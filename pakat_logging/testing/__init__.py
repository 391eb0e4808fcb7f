"""Test support: a fake Pakat tracker API server on loopback."""

from pakat_logging.testing._http import RecordedRequest
from pakat_logging.testing._server import FakePakatServer

__all__ = ["FakePakatServer", "RecordedRequest"]
