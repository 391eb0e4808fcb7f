# Run it in examples/, with `pakat-logging fake-server` in another shell:
# PAKAT_MA_KEY=k PAKAT_URL=http://127.0.0.1:8025/api/v2 gunicorn gunicorn_app:app  # noqa: E501
"""gunicorn settings: three pre-forked workers, logging through dictConfig."""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = 3
# Loading the app before the fork is safe: each worker renews the sender.
preload_app = os.environ.get("PRELOAD", "1") == "1"
# gunicorn merges this over its own defaults, whose root logger needs a
# "console" handler: keep one.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "WARNING", "handlers": ["console"]},
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "pakat": {"class": "pakat_logging.PakatHandler"},
    },
    "loggers": {"shop": {"handlers": ["pakat"], "level": "INFO"}},
}
