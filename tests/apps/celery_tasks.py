"""A Celery app on a filesystem broker, for a real prefork worker."""

import logging
import logging.config
import os

from celery import Celery, signals

folder = os.environ["PAKAT_TEST_BROKER"]
app = Celery("tests")
app.conf.update(
    broker_url="filesystem://",
    broker_transport_options={
        "data_folder_in": folder,
        "data_folder_out": folder,
        "processed_folder": folder,
        "control_folder": folder,
    },
    worker_hijack_root_logger=False,
)
log = logging.getLogger("shop.tasks")


@signals.setup_logging.connect
def setup_logging(**kwargs):
    """Send the shop's marked records through PakatHandler."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"pakat": {"class": "pakat_logging.PakatHandler"}},
            "loggers": {"shop": {"handlers": ["pakat"], "level": "INFO"}},
        }
    )


@app.task
def welcome(number):
    """Track one welcome mail, tagged with the worker process."""
    log.info(
        "Welcome sent",
        extra={
            "pakat": {"event": f"welcome-{number}-{os.getpid()}"},
            "email": f"user{number}@example.com",
        },
    )
