# Run it: python examples/otel_tracing.py
# (sends to an embedded fake tracker unless PAKAT_URL and PAKAT_MA_KEY are set)
"""Business spans from OpenTelemetry, kept through a 10 % ratio sampler."""

from _fake_tracker import ensure_tracker, show
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from pakat_logging import PakatSampler, PakatSpanExporter, bind_email

server = ensure_tracker()

# Without PakatSampler, nine business spans in ten would never be exported.
provider = TracerProvider(
    sampler=PakatSampler(ParentBased(TraceIdRatioBased(0.1)))
)
exporter = PakatSpanExporter()
# export only queues the calls, so it can run on the thread that ends each
# span, where bind_email is seen.
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("shop")

for order in range(5):
    attributes = {
        "pakat.event": "order_completed",
        "pakat.eventdata.id": f"cart:{order}",
        "pakat.eventdata.data.total": 1_250_000,
    }
    # As a web framework's middleware binds the signed-in user per request.
    with (
        bind_email(f"buyer{order}@example.com"),
        tracer.start_as_current_span("checkout", attributes=attributes),
        tracer.start_as_current_span("charge card"),
    ):
        pass

provider.force_flush()
exporter.force_flush()
show(server)
provider.shutdown()
