# Run it: python examples/logging_dictconfig.py
# (sends to an embedded fake tracker unless PAKAT_URL and PAKAT_MA_KEY are set)
"""Plain logging, configured with dictConfig as Django's LOGGING would be."""

import logging
import logging.config

from _fake_tracker import ensure_tracker, show

from pakat_logging import TrackEvent, bind_email, get_sender

server = ensure_tracker()

logging.config.dictConfig(
    {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "console": {"class": "logging.StreamHandler"},
            # The key and URL come from PAKAT_MA_KEY and PAKAT_URL.
            "pakat": {"class": "pakat_logging.PakatHandler", "timeout": 5},
        },
        "root": {"handlers": ["console", "pakat"], "level": "INFO"},
    }
)

log = logging.getLogger("shop")
log.info(
    "Signed up",
    extra={"pakat": {"attributes": {"FIRSTNAME": "Sara"}}, "email": "s@x.io"},
)
with bind_email("s@x.io"):
    log.info("Viewed cart", extra={"pakat": {"page": "cart"}})
    log.info(
        "Order placed",
        extra={
            "pakat": TrackEvent("order_completed", eventdata={"id": "c:1"})
        },
    )
log.info("Not a business event: never sent")

get_sender().flush(10)
show(server)
