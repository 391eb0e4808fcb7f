# Run it: python examples/fastapi_app.py
# (requests through Starlette's TestClient; fake tracker unless PAKAT_URL set)
"""FastAPI with structlog and OpenTelemetry, and the ASGI e-mail binding."""

import structlog
from _fake_tracker import ensure_tracker, show
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from starlette.testclient import TestClient

from pakat_logging import (
    PakatProcessor,
    PakatSampler,
    PakatSpanExporter,
    get_sender,
)
from pakat_logging.asgi import PakatEmailMiddleware

server = ensure_tracker()

structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        PakatProcessor(),
        structlog.processors.JSONRenderer(),
    ]
)
provider = TracerProvider(sampler=PakatSampler(TraceIdRatioBased(0.1)))
provider.add_span_processor(SimpleSpanProcessor(PakatSpanExporter()))
tracer = provider.get_tracer("shop")
log = structlog.get_logger()

app = FastAPI()


def header_email(scope):
    # Stands in for your authentication: scope["user"] by default.
    headers = dict(scope["headers"])
    return headers.get(b"x-user", b"").decode() or None


app.add_middleware(PakatEmailMiddleware, get_email=header_email)


@app.post("/cart")
async def cart():
    log.info("cart updated", pakat={"event": "cart_updated"})
    return {"ok": True}


@app.post("/checkout")
async def checkout():
    attributes = {"pakat.event": "order_completed", "user.email": "neda@x.io"}
    with tracer.start_as_current_span("checkout", attributes=attributes):
        return {"ok": True}


if __name__ == "__main__":
    with TestClient(app) as client:
        client.post("/cart", headers={"X-User": "omid@example.com"})
        client.post("/checkout")
    get_sender().flush(10)
    show(server)
    provider.shutdown()
