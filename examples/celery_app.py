# Run it: python examples/celery_app.py   (runs the task in-process)
# Worker, in examples/: CELERY_BROKER_URL=... celery -A celery_app worker
"""Celery: configure the handler in setup_logging, track from tasks."""

import logging
import logging.config
import os

from _fake_tracker import ensure_tracker, show
from celery import Celery, signals

from pakat_logging import get_sender

server = ensure_tracker()
app = Celery("shop", broker=os.environ.get("CELERY_BROKER_URL", "memory://"))
log = logging.getLogger("shop.tasks")


@signals.setup_logging.connect
def setup_logging(**kwargs):
    # Connecting this signal stops Celery from replacing your logging.
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"pakat": {"class": "pakat_logging.PakatHandler"}},
            "loggers": {"shop": {"handlers": ["pakat"], "level": "INFO"}},
        }
    )


@app.task
def send_welcome(email):
    log.info(
        "Welcome mail sent",
        extra={"pakat": {"event": "welcome_sent"}, "email": email},
    )


if __name__ == "__main__":
    setup_logging()
    app.conf.task_always_eager = True
    send_welcome.delay("sara@example.com")
    get_sender().flush(10)
    show(server)
