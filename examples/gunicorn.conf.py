# Run it: PAKAT_URL=... gunicorn -c examples/gunicorn.conf.py gunicorn_app:app
# (from examples/; `pakat-logging fake-server` gives a PAKAT_URL to use)
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
