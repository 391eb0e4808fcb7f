"""Delivery throughput of the sender, side by side with its baselines.

Run by hand: ``python bench/throughput.py``. At zero latency the sender is
compared with a bare ``requests.Session`` loop posting the same bodies to
the same local server (nginx answering 204 when ``nginx`` is installed,
else the fake tracker). At 50 ms latency it is compared with the ideal,
in-flight calls divided by the latency, against the fake tracker.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import requests
from _common import interleave, start_fake_server

from pakat_logging import Sender, TrackEvent

KEY = "bench-key-0000000000"

NGINX_CONF = """
daemon off;
worker_processes 1;
error_log stderr;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix};
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        location /api/v2/ {{ return 204; }}
    }}
}}
"""


def _calls(count: int) -> list[TrackEvent]:
    return [
        TrackEvent(
            "order_completed",
            email=f"user{n}@example.com",
            properties={"FIRSTNAME": "Sara"},
            eventdata={"id": f"cart:{n}", "data": {"total": 1250000}},
        )
        for n in range(count)
    ]


def start_nginx() -> tuple[subprocess.Popen | None, str | None]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        return None, None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    prefix = tempfile.mkdtemp()
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as file:
        file.write(NGINX_CONF.format(prefix=prefix, port=port))
    process = subprocess.Popen([nginx, "-p", prefix, "-c", conf])
    url = f"http://127.0.0.1:{port}/api/v2"
    for _ in range(100):
        try:
            requests.post(url + "/trackEvent", timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.05)
    return process, url


def bare_loop(url: str, calls: list[TrackEvent]) -> float:
    headers = {
        "ma-key": KEY,
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    with requests.Session() as session:
        started = time.perf_counter()
        for call in calls:
            session.post(
                f"{url}/{call.endpoint}", data=call.payload(), headers=headers
            ).close()
        return len(calls) / (time.perf_counter() - started)


def sender_rate(url: str, calls: list[TrackEvent], **options) -> float:
    with Sender(KEY, url=url, **options) as sender:
        started = time.perf_counter()
        for call in calls:
            sender.submit(call)
        assert sender.flush(300)
        rate = len(calls) / (time.perf_counter() - started)
        assert sender.stats()["delivered"] == len(calls), sender.stats()
    return rate


def zero_latency() -> None:
    process, url = start_nginx()
    label = "nginx"
    if process is None:
        process, url = start_fake_server()
        label = "fake tracker"
    calls = _calls(3000)
    try:
        results = interleave(
            {
                "bare requests.Session loop": lambda: bare_loop(url, calls),
                "Sender (default max_workers=8)": lambda: sender_rate(
                    url, calls
                ),
                "Sender (max_workers=1)": lambda: sender_rate(
                    url, calls, max_workers=1
                ),
            },
            rounds=5,
        )
    finally:
        process.terminate()
        process.wait()
    print(f"\nZero latency, {label} answering 204 (calls/s, median of 5)")
    base = results["bare requests.Session loop"]
    for name, rate in results.items():
        print(
            f"  {name:<32} {rate:8.0f}  {rate / base:5.2f}x of the bare loop"
        )


def high_latency(latency: float = 0.05) -> None:
    process, url = start_fake_server(latency)
    try:
        cases = {}
        for workers, count in ((8, 400), (32, 1600)):
            calls = _calls(count)
            cases[workers] = lambda calls=calls, workers=workers: sender_rate(
                url, calls, max_workers=workers
            )
        results = interleave({str(k): v for k, v in cases.items()}, rounds=3)
    finally:
        process.terminate()
        process.wait()
    print(
        f"\n{latency * 1000:.0f} ms latency, fake tracker "
        "(calls/s, median of 3)"
    )
    for workers, rate in results.items():
        ideal = int(workers) / latency
        print(
            f"  max_workers={workers:<3} {rate:7.0f}  ideal {ideal:5.0f}  "
            f"{rate / ideal:5.2f}x of ideal"
        )


def main() -> int:
    zero_latency()
    high_latency()
    return 0


if __name__ == "__main__":
    sys.exit(main())
