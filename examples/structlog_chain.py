# Run it: python examples/structlog_chain.py
# (sends to an embedded fake tracker unless PAKAT_URL and PAKAT_MA_KEY are set)
"""A structlog chain with PakatProcessor; the e-mail comes from contextvars."""

import structlog
from _fake_tracker import ensure_tracker, show

from pakat_logging import PakatProcessor, get_sender

server = ensure_tracker()

structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        PakatProcessor(),
        structlog.processors.add_log_level,
        structlog.processors.JSONRenderer(),
    ]
)

log = structlog.get_logger()
structlog.contextvars.bind_contextvars(email="omid@example.com")
log.info("cart updated", pakat={"event": "cart_updated"}, items=2)
log.info("promo clicked", pakat={"link": "example.com/promo"})
log.info("rendered page")  # not marked: printed, never sent

get_sender().flush(10)
show(server)
