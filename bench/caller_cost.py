"""Caller cost of one tracked log call, side by side with the baselines.

Run by hand: ``python bench/caller_cost.py``. The sender delivers for real
to a fake tracker in another process while the app's thread logs.
Segment's and PostHog's clients are measured too when they are installed
(``pip install -e ".[bench]"``).

"Floor handler" is a reference, not a product: a handler that only
encodes the marker as JSON and appends it to a deque under a lock, with
no checks, no e-mail and no bounds. It shows what any handler that
snapshots a marker on the caller's thread and queues it must cost here.

"Tracker stalled" runs the marked case against a tracker that never
answers, so that the sender's threads sit idle while the calls are timed.
In wall time, the gap between it and the marked case above is the share
of the interpreter that delivery takes while the app's thread logs.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import logging
import sys
import threading
import time

import structlog
from _common import (
    medians,
    paired_ratio,
    report,
    sample,
    start_fake_server,
    start_sink,
    timed,
)

from pakat_logging import PakatHandler, PakatProcessor, Sender
from pakat_logging._json import encode

KEY = "bench-key-0000000000"
CALLS = 1_000
ROUNDS = 31

MARKED = {
    "pakat": {"event": "order_completed", "properties": {"FIRSTNAME": "S"}},
    "email": "sara@example.com",
}
UNMARKED = {"email": "sara@example.com", "order": 1234}
# The same marker from many contacts, as a busy app logs it: each call's
# contact may have no calls waiting, so it may need a worker woken.
CONTACTS = [
    {"pakat": MARKED["pakat"], "email": f"user{n}@example.com"}
    for n in range(1_000)
]


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


CLOCK = time.perf_counter


def _per_call_us(function) -> float:
    return timed(function, CALLS, CLOCK) * 1e6


class FloorHandler(logging.Handler):
    """Encode the marker and queue it under a lock: nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: collections.deque = collections.deque()
        self.queue_lock = threading.Lock()

    def handle(self, record: logging.LogRecord) -> bool:
        marker = record.__dict__.get("pakat")
        if marker is None:
            return False

        text = encode(marker)
        with self.queue_lock:
            self.queue.append(text)
        return True


def _each_contact(logger: logging.Logger):
    contacts = itertools.cycle(CONTACTS)
    return lambda: logger.info("Order placed", extra=next(contacts))


def logging_cases(sender: Sender) -> dict:
    null = _logger("bench.null", logging.NullHandler())
    pakat = _logger("bench.pakat", PakatHandler(sender=sender))
    floor = _logger("bench.floor", FloorHandler())
    return {
        "NullHandler, unmarked": lambda: _per_call_us(
            lambda: null.info("Order placed", extra=UNMARKED)
        ),
        "PakatHandler, unmarked": lambda: _per_call_us(
            lambda: pakat.info("Order placed", extra=UNMARKED)
        ),
        "NullHandler, marked": lambda: _per_call_us(
            lambda: null.info("Order placed", extra=MARKED)
        ),
        "PakatHandler, marked": lambda: _per_call_us(
            lambda: pakat.info("Order placed", extra=MARKED)
        ),
        "Floor handler, marked": lambda: _per_call_us(
            lambda: floor.info("Order placed", extra=MARKED)
        ),
    }


def contact_cases(sender: Sender) -> dict:
    null = _logger("bench.null.contacts", logging.NullHandler())
    pakat = _logger("bench.pakat.contacts", PakatHandler(sender=sender))
    # Each contact once first: an e-mail seen for the first time takes
    # the general path, which is not what this measures.
    for extra in CONTACTS:
        pakat.info("Order placed", extra=extra)
    null_each, pakat_each = _each_contact(null), _each_contact(pakat)
    return {
        "NullHandler, marked, 1,000 contacts": lambda: _per_call_us(null_each),
        "PakatHandler, marked, 1,000 contacts": lambda: _per_call_us(
            pakat_each
        ),
    }


def stalled_cases(sender: Sender) -> dict:
    """The marked case again, with a sender whose tracker never answers.

    Its first call waits for an answer that does not come, so its threads
    take no part in the interpreter while the calls are timed: what is
    left is the calling thread's own work. Beside the cases above, it
    shows how much of their wall time is the sender's threads moving and
    sending calls while the app's thread logs.
    """
    null = _logger("bench.null.stalled", logging.NullHandler())
    pakat = _logger("bench.pakat.stalled", PakatHandler(sender=sender))
    # The first call, sent and held: the rest wait behind it.
    pakat.info("Order placed", extra=MARKED)
    return {
        "NullHandler, marked, tracker stalled": lambda: _per_call_us(
            lambda: null.info("Order placed", extra=MARKED)
        ),
        "PakatHandler, marked, tracker stalled": lambda: _per_call_us(
            lambda: pakat.info("Order placed", extra=MARKED)
        ),
    }


def one_at_a_time(sender: Sender, rounds: int = 400) -> dict:
    """Time single marked calls, each made while the sender is idle.

    An app that logs a few business events a second meets an idle sender
    on each: its call finds no calls waiting and wakes a worker. Each call
    is timed alone, right after a flush, so both cases start from the
    same state; the order of the two changes every round.
    """
    null = _logger("bench.null.single", logging.NullHandler())
    pakat = _logger("bench.pakat.single", PakatHandler(sender=sender))
    clock = (
        time.perf_counter_ns
        if CLOCK is time.perf_counter
        else time.thread_time_ns
    )
    loggers = {
        "NullHandler, marked, one at a time": null,
        "PakatHandler, marked, one at a time": pakat,
    }
    samples: dict = {name: [] for name in loggers}
    pakat.info("Order placed", extra=MARKED)
    order = list(loggers)
    for _ in range(rounds):
        for name in order:
            sender.flush(60)
            started = clock()
            loggers[name].info("Order placed", extra=MARKED)
            samples[name].append((clock() - started) / 1e3)
        order.reverse()
    sender.flush(60)

    return samples


def _structlog_logger(processors):
    return structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=processors,
        cache_logger_on_first_use=True,
    )


def structlog_cases(sender: Sender) -> dict:
    tail = [
        structlog.processors.add_log_level,
        structlog.processors.JSONRenderer(),
    ]
    plain = _structlog_logger(list(tail))
    pakat = _structlog_logger([PakatProcessor(sender=sender), *tail])
    marker = MARKED["pakat"]
    return {
        "structlog, unmarked": lambda: _per_call_us(
            lambda: plain.info("order placed", email="sara@example.com")
        ),
        "structlog + PakatProcessor, unmarked": lambda: _per_call_us(
            lambda: pakat.info("order placed", email="sara@example.com")
        ),
        "structlog, marked": lambda: _per_call_us(
            lambda: plain.info(
                "order placed", pakat=dict(marker), email="s@e.io"
            )
        ),
        "structlog + PakatProcessor, marked": lambda: _per_call_us(
            lambda: pakat.info(
                "order placed", pakat=dict(marker), email="s@e.io"
            )
        ),
    }


def peer_cases(host: str) -> dict:
    cases = {}
    try:
        from segment.analytics import Client as SegmentClient
    except ImportError:
        print("segment-analytics-python is not installed: skipped")
    else:
        segment = SegmentClient("write-key", host=host, max_queue_size=10**6)
        cases["Segment track"] = lambda: _per_call_us(
            lambda: segment.track(
                "sara@example.com", "order_completed", {"FIRSTNAME": "S"}
            )
        )
    try:
        from posthog import Posthog
    except ImportError:
        print("posthog is not installed: skipped")
    else:
        posthog = Posthog("api-key", host=host, max_queue_size=10**6)
        cases["PostHog capture"] = lambda: _per_call_us(
            lambda: posthog.capture(
                "order_completed",
                distinct_id="sara@example.com",
                properties={"FIRSTNAME": "S"},
            )
        )
    return cases


def _apart(url: str, cases, title: str) -> None:
    """Measure ``cases(sender)``, with a sender of their own, to ``url``.

    Each case's ratio is against the first case that ``cases`` names.
    """
    with Sender(
        KEY, url=url, max_queue_size=10**6, max_queue_bytes=2**31
    ) as sender:
        samples = sample(cases(sender), ROUNDS)
        report(
            f"Caller cost per logging call, {title} "
            "(median of rounds; ratios paired by round)",
            medians(samples),
            next(iter(samples)),
            "us",
            samples,
        )
        sender.close(0.1)


def main() -> int:
    global CLOCK
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--clock",
        choices=["wall", "thread"],
        default="wall",
        help="wall time, or CPU time of the calling thread only",
    )
    args = parser.parse_args()
    CLOCK = time.perf_counter if args.clock == "wall" else time.thread_time
    print(f"clock: {args.clock}")
    process, url = start_fake_server()
    sink, sink_url = start_sink()
    # A tracker that holds each request for an hour.
    stalled, stalled_url = start_fake_server(latency=3600.0)
    try:
        with Sender(
            KEY, url=url, max_queue_size=10**6, max_queue_bytes=2**31
        ) as sender:
            samples = sample(
                {**logging_cases(sender), **peer_cases(sink_url)}, ROUNDS
            )
            report(
                "Caller cost per logging call (median of rounds; "
                "ratios paired by round)",
                medians(samples),
                "NullHandler, marked",
                "us",
                samples,
            )
            unmarked = paired_ratio(
                samples, "PakatHandler, unmarked", "NullHandler, unmarked"
            )
            marked = paired_ratio(
                samples, "PakatHandler, marked", "NullHandler, marked"
            )
            print(f"  unmarked ratio {unmarked:.2f}x (target <= 1.05x)")
            print(f"  marked ratio   {marked:.2f}x (target <= 1.5x)")

            samples = sample(structlog_cases(sender), ROUNDS)
            report(
                "Caller cost per structlog call (median of rounds; "
                "ratios paired by round)",
                medians(samples),
                "structlog, unmarked",
                "us",
                samples,
            )
            sender.flush(120)
            print(f"\nsender: {sender.stats()}")

        # Last, each with a sender of its own, which would weigh on the
        # cases above: many contacts keep every worker busy, and a stalled
        # tracker holds its sender's calls until close.
        _apart(url, contact_cases, "1,000 contacts in turn")
        _apart(stalled_url, stalled_cases, "tracker stalled")

        with Sender(KEY, url=url) as sender:
            samples = one_at_a_time(sender)
            report(
                "Caller cost per logging call, one at a time to an idle "
                "sender (median of 400; ratios paired by round)",
                medians(samples),
                "NullHandler, marked, one at a time",
                "us",
                samples,
            )
    finally:
        for child in (process, sink, stalled):
            child.terminate()
            child.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
