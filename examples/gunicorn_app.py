# Run it in examples/, with `pakat-logging fake-server` in another shell:
# PAKAT_MA_KEY=k PAKAT_URL=http://127.0.0.1:8025/api/v2 gunicorn gunicorn_app:app  # noqa: E501
"""A WSGI app for gunicorn: each worker delivers through its own sender."""

import logging
import os

log = logging.getLogger("shop")

# With preload_app this runs in the master before the fork, and starts its
# sender thread there: every worker must still deliver on its own.
log.info(
    "App loaded",
    extra={"pakat": {"event": "app_loaded"}, "email": "ops@example.com"},
)


def app(environ, start_response):
    log.info(
        "Page viewed",
        extra={
            "pakat": {"page": environ.get("PATH_INFO", "/")},
            "email": f"worker{os.getpid()}@example.com",
        },
    )
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
