"""Cost per span of PakatSpanExporter.export, side by side with baselines.

Run by hand: ``python bench/export_cost.py``. Batches of 512 finished spans
with 0 % and 10 % business spans go to our exporter, to an exporter that
does nothing, and to one that does nothing but one attribute look-up per
span. The business spans' calls are delivered for real to a fake tracker
in another process.

A second part measures what a span costs the thread that starts and ends
it, on that thread's CPU, with our exporter under ``SimpleSpanProcessor``
and under ``BatchSpanProcessor``, against a provider with no processor.
"""

from __future__ import annotations

import sys
import time

from _common import (
    interleave,
    medians,
    paired_ratio,
    sample,
    start_fake_server,
    timed,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from pakat_logging import PakatSpanExporter, Sender

BATCH = 512
REPEAT = 200


class NothingExporter(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


class LookupExporter(SpanExporter):
    def export(self, spans):
        for span in spans:
            span.attributes.get("pakat.event")
        return SpanExportResult.SUCCESS


def batch(business_every: int | None) -> list:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for n in range(BATCH):
        attributes = {"http.method": "GET", "http.route": "/items/{id}"}
        if business_every and n % business_every == 0:
            attributes.update(
                {
                    "pakat.event": "order_completed",
                    "user.email": f"user{n}@example.com",
                    "pakat.properties.FIRSTNAME": "Sara",
                }
            )
        with tracer.start_as_current_span("span", attributes=attributes):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


PLAIN = {"http.method": "GET", "http.route": "/items/{id}"}
BUSINESS = {**PLAIN, "pakat.event": "order_completed", "user.email": "a@b.io"}
PROCESSORS = {
    "no span processor": None,
    "SimpleSpanProcessor": SimpleSpanProcessor,
    "BatchSpanProcessor": BatchSpanProcessor,
}


def ending_thread(sender: Sender) -> None:
    """Print what a span costs the thread that ends it, per processor."""
    cases = {}
    providers = []
    for name, processor in PROCESSORS.items():
        provider = TracerProvider()
        providers.append(provider)
        if processor is not None:
            provider.add_span_processor(
                processor(PakatSpanExporter(sender=sender))
            )
        tracer = provider.get_tracer("bench")
        for kind, attributes in (("plain", PLAIN), ("business", BUSINESS)):

            def one(tracer=tracer, attributes=attributes) -> None:
                with tracer.start_as_current_span("s", attributes=attributes):
                    pass

            cases[f"{name}, {kind} span"] = lambda one=one: (
                timed(one, 500, time.thread_time) * 1e9
            )

    samples = sample(cases, 21)
    for provider in providers:
        provider.shutdown()
    results = medians(samples)
    print(
        "\nspan start and end, on the ending thread's CPU "
        "(ns, median of 21; ratios paired by round)"
    )
    for name, value in results.items():
        kind = name.rsplit(", ", 1)[1]
        base = f"no span processor, {kind}"
        ratio = paired_ratio(samples, name, base)
        print(f"  {name:<34} {value:8.0f}  {ratio:5.2f}x of {base}")


def main() -> int:
    process, url = start_fake_server()
    plain, business = batch(None), batch(10)
    try:
        with Sender(
            "bench-key-0000000000", url=url, max_queue_size=10**6
        ) as sender:
            ours = PakatSpanExporter(sender=sender)
            nothing, lookup = NothingExporter(), LookupExporter()

            def per_span(exporter, spans):
                return lambda: (
                    timed(lambda: exporter.export(spans), REPEAT)
                    / len(spans)
                    * 1e9
                )

            results = interleave(
                {
                    "do-nothing exporter": per_span(nothing, plain),
                    "one look-up per span": per_span(lookup, plain),
                    "PakatSpanExporter, 0 % business": per_span(ours, plain),
                    "PakatSpanExporter, 10 % business": per_span(
                        ours, business
                    ),
                },
                rounds=7,
            )
            ending_thread(sender)
            sender.flush(300)
    finally:
        process.terminate()
        process.wait()
    print(f"\nexport cost per span, batches of {BATCH} (ns, median of 7)")
    base = results["one look-up per span"]
    for name, value in results.items():
        print(
            f"  {name:<34} {value:8.0f}  {value / base:5.2f}x of one look-up"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
