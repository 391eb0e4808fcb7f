"""The demo: a small shop wired as a real app would, against a fake tracker."""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Callable
from typing import Any, TextIO

from ._calls import Identify
from ._context import bind_email
from ._registry import get_sender
from ._sender import Sender
from .testing import FakePakatServer, RecordedRequest

__all__ = ["run_demo"]

DEMO_KEY = "demo-key-not-secret-0000"


def _configure_logging(url: str) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "plain": {
                    "format": "  log: %(levelname)s %(name)s: %(message)s"
                }
            },
            "handlers": {
                "console": {
                    "class": "logging.StreamHandler",
                    "stream": "ext://sys.stdout",
                    "formatter": "plain",
                    "level": "WARNING",
                },
                "pakat": {
                    "class": "pakat_logging.PakatHandler",
                    "ma_key": DEMO_KEY,
                    "url": url,
                    "level": "INFO",
                },
            },
            "root": {"handlers": ["console", "pakat"], "level": "INFO"},
        }
    )


def _log_lines() -> None:
    shop = logging.getLogger("shop")
    shop.info(
        "Signed up",
        extra={
            "pakat": Identify(attributes={"FIRSTNAME": "Sara"}),
            "email": "sara@example.com",
        },
    )
    with bind_email("sara@example.com"):
        shop.info("Viewed the cart", extra={"pakat": {"page": "cart"}})
        shop.info(
            "Order placed",
            extra={
                "pakat": {
                    "event": "order_completed",
                    "eventdata": {
                        "id": "cart:1234",
                        "data": {"total": 1_250_000_000, "items": 3},
                    },
                }
            },
        )
    shop.info("Health check passed")  # not marked: never sent
    shop.info("Broken marker", extra={"pakat": {"event": "x", "page": "y"}})


def _structlog_lines(url: str) -> bool:
    try:
        import structlog  # noqa: PLC0415 - an optional extra
    except ImportError:
        return False

    from ._structlog import PakatProcessor  # noqa: PLC0415

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            PakatProcessor(DEMO_KEY, url=url),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.ReturnLoggerFactory(),
    )
    structlog.contextvars.bind_contextvars(email="omid@example.com")
    log = structlog.get_logger()
    log.info("cart updated", pakat={"event": "cart_updated"}, items=2)
    log.info("promo clicked", pakat={"link": "example.com/promo"})
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    return True


def _spans(url: str) -> bool:
    try:
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
            SimpleSpanProcessor,
        )
        from opentelemetry.sdk.trace.sampling import (  # noqa: PLC0415
            TraceIdRatioBased,
        )
    except ImportError:
        return False

    from ._otel import PakatSampler, PakatSpanExporter  # noqa: PLC0415

    # Ratio 0 would drop every span; the wrapper keeps the business ones.
    provider = TracerProvider(sampler=PakatSampler(TraceIdRatioBased(0.0)))
    exporter = PakatSpanExporter(DEMO_KEY, url=url)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("shop")
    business = {
        "pakat.event": "payment_succeeded",
        "user.email": "neda@example.com",
        "pakat.properties.LASTNAME": "Karimi",
    }
    with (
        tracer.start_as_current_span("payment", attributes=business),
        tracer.start_as_current_span("SELECT orders"),
    ):
        pass
    provider.shutdown()
    return True


def _describe(request: RecordedRequest) -> str:
    body = request.body if isinstance(request.body, dict) else {}
    name = body.get("event") or body.get("page") or body.get("link") or ""
    extra = {
        key: value
        for key, value in body.items()
        if key not in ("email", "event", "page", "link")
    }
    details = ", ".join(f"{key}={value}" for key, value in extra.items())
    email = body.get("email", "")
    line = f"{request.endpoint:<11} {email:<19} {name:<18} {details}"
    return line.rstrip()


def _report(
    server: FakePakatServer, sender: Sender, write: Callable[[str], Any]
) -> None:
    write(f"\nThe fake tracker at {server.url} received:\n")
    write(f"  #  {'endpoint':<11} {'email':<19} {'name':<18} rest of the body")
    for number, request in enumerate(server.calls, 1):
        write(f"  {number:<2} {_describe(request)}")

    stats = sender.stats()
    counters = ", ".join(f"{key} {value}" for key, value in stats.items())
    write(f"\nSender counters: {counters}")


def run_demo(out: TextIO) -> int:
    """Run the demo and write what the fake tracker received to ``out``.

    Returns:
        0 when every accepted call arrived, 1 otherwise.
    """

    def write(line: str) -> None:
        out.write(line + "\n")

    root = logging.getLogger()
    saved = list(root.handlers), root.level
    with FakePakatServer(ma_key=DEMO_KEY) as server:
        write("pakat-logging demo: a shop logs, traces and binds its users.")
        write("Warnings below come from the library, as your app would see.")
        _configure_logging(server.url)
        _log_lines()
        if not _structlog_lines(server.url):
            write("  (structlog is not installed: its part is skipped)")
        if not _spans(server.url):
            write("  (OpenTelemetry is not installed: its part is skipped)")

        sender = get_sender(DEMO_KEY, url=server.url)
        delivered = sender.flush(10.0)
        _report(server, sender, write)
        sender.close()

    # Leave logging as it was, for callers that run the demo in-process.
    for handler in root.handlers:
        if handler not in saved[0]:
            handler.close()
    root.handlers[:], root.level = saved

    return 0 if delivered else 1
