"""Run every benchmark and write their ratios as one Markdown table.

Run by hand: ``python bench/report.py``. Each benchmark runs in its own
process from this folder, one after another, as it would run alone; this
script only reads what they print, and measures nothing itself. The
table, the date, the machine and each benchmark's whole output go to
``bench/RESULTS.md`` (``--output`` to write elsewhere), and the table, the
date and the machine to the README's "Numbers" section (``--no-readme`` to
leave it).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class Row:
    """One measured case: its value, and its ratio to a named baseline."""

    case: str
    value: str
    ratio: str
    against: str
    target: str = ""


@dataclasses.dataclass(frozen=True)
class Result:
    """What one benchmark printed, and the rows read from it."""

    title: str
    command: str
    output: str
    seconds: float
    rows: list[Row]


# "  PakatHandler, marked           10.00 us    2.25x"
_COST = re.compile(
    r"^  (?P<case>\S.*?)\s+(?P<value>[\d.]+) us\s+(?P<ratio>[\d.]+)x$"
)
# "  marked ratio   2.25x (target <= 1.5x)"
_COST_TARGET = re.compile(
    r"^  (?P<kind>\w+) ratio\s+(?P<ratio>[\d.]+)x \(target (?P<target>.+)\)$"
)
# "  Sender (max_workers=1)   2369   1.41x of the bare loop", and
# "  max_workers=8   145  ideal   160   0.91x of ideal"
_VERSUS = re.compile(
    r"^  (?P<case>\S.*?)\s+(?P<value>\d+)\s+(?:ideal\s+(?P<ideal>\d+)\s+)?"
    r"(?P<ratio>[\d.]+)x of (?P<against>.+)$"
)
# "  marked call, with spool         18.53"
_SPOOL_VALUE = re.compile(r"^  (?P<case>\S.*?)\s+(?P<value>[\d.]+)$")
# "  spool / memory: 1.11x (target <= 2x)"
_SPOOL_RATIO = re.compile(
    r"^  spool / memory: (?P<ratio>[\d.]+)x \(target (?P<target>.+)\)$"
)


# "  throughput, redis         751.87 calls/s    0.89x"
_SIDE_BY_SIDE = re.compile(
    r"^  (?P<case>\S.*?)\s+(?P<value>[\d.]+) (?P<unit>us|calls/s)\s+"
    r"(?P<ratio>[\d.]+)x$"
)


def _matches(pattern: re.Pattern[str], output: str) -> Iterator[re.Match]:
    for line in output.splitlines():
        match = pattern.match(line)
        if match:
            yield match


# caller_cost.py states each section's ratios against these cases.
_COST_BASELINES = {
    "Caller cost per logging call": "NullHandler, marked",
    "Caller cost per structlog call": "structlog, unmarked",
    "Caller cost per logging call, 1,000 contacts": (
        "NullHandler, marked, 1,000 contacts"
    ),
    "Caller cost per logging call, tracker stalled": (
        "NullHandler, marked, tracker stalled"
    ),
    "Caller cost per logging call, one at a time": (
        "NullHandler, marked, one at a time"
    ),
}


def caller_cost(output: str) -> list[Row]:
    """Read caller_cost.py: each case against its section's baseline."""
    rows = []
    baseline = ""
    for line in output.splitlines():
        for title, case in _COST_BASELINES.items():
            if line.startswith(title):
                baseline = case
        match = _COST.match(line)
        if match:
            rows.append(
                Row(
                    match["case"],
                    f"{match['value']} µs",
                    f"{match['ratio']}x",
                    baseline,
                )
            )
    # The verdicts the script prints: PakatHandler against NullHandler,
    # both with the same record.
    rows += [
        Row(
            f"PakatHandler, {match['kind']}",
            "",
            f"{match['ratio']}x",
            f"NullHandler, {match['kind']}",
            match["target"],
        )
        for match in _matches(_COST_TARGET, output)
    ]
    return rows


def throughput(output: str) -> list[Row]:
    """Read throughput.py: against the bare loop, or the ideal rate."""
    return [
        Row(
            match["case"],
            f"{match['value']} calls/s",
            f"{match['ratio']}x",
            f"the ideal, {match['ideal']} calls/s"
            if match["ideal"]
            else match["against"],
        )
        for match in _matches(_VERSUS, output)
    ]


def memory(output: str) -> list[Row]:
    """Read memory.py: bytes held per queued call, against its body."""
    rows = []
    for case, held_line, body_line in (
        ("memory per queued call", "queued call", "call"),
        (
            "memory per logged marker, not yet encoded",
            "queued marker",
            "marker's call",
        ),
    ):
        held = re.search(
            rf"memory per {held_line}: (\d+) bytes \(target (.+)\)", output
        )
        body = re.search(rf"body of one {body_line}: (\d+) bytes", output)
        if held is not None and body is not None:
            rows.append(
                Row(
                    case,
                    f"{held[1]} bytes",
                    f"{int(held[1]) / int(body[1]):.2f}x",
                    f"its JSON body, {body[1]} bytes",
                    held[2],
                )
            )

    return rows


def _each_against(output: str, unit: str) -> list[Row]:
    """Read lines that name their own baseline: "... 1.30x of BASE"."""
    return [
        Row(
            match["case"],
            f"{match['value']} {unit}",
            f"{match['ratio']}x",
            match["against"],
        )
        for match in _matches(_VERSUS, output)
    ]


def export_cost(output: str) -> list[Row]:
    """Read export_cost.py: each exporter against one look-up per span."""
    return _each_against(output, "ns/span")


def instructions(output: str) -> list[Row]:
    """Read instructions.py: each case against the NullHandler's count."""
    return _each_against(output, "instructions")


def spool_cost(output: str) -> list[Row]:
    """Read spool_cost.py: with a spool against memory only, twice."""
    values = [(m["case"], m["value"]) for m in _matches(_SPOOL_VALUE, output)]
    ratios = list(_matches(_SPOOL_RATIO, output))
    units = ["µs", "calls/s"]
    rows = []
    # The values come in pairs, memory only then with spool, each pair
    # followed by its ratio.
    for (memory_only, spooled), ratio, unit in zip(
        zip(values[::2], values[1::2], strict=True), ratios, units, strict=True
    ):
        rows.append(
            Row(
                spooled[0],
                f"{spooled[1]} {unit}",
                f"{ratio['ratio']}x",
                f"{memory_only[0]}, {memory_only[1]} {unit}",
                ratio["target"],
            )
        )

    return rows


def redis_cost(output: str) -> list[Row]:
    """Read redis_cost.py: each spool against memory only, per section."""
    rows = []
    baseline = ""
    for match in _matches(_SIDE_BY_SIDE, output):
        # Each section starts with its memory-only case, the baseline.
        if match["case"].endswith(", memory"):
            baseline = f"{match['case']}, {match['value']}"
        unit = "µs" if match["unit"] == "us" else match["unit"]
        rows.append(
            Row(
                match["case"],
                f"{match['value']} {unit}",
                f"{match['ratio']}x",
                f"{baseline} {unit}",
            )
        )

    return rows


BENCHMARKS: list[tuple[str, list[str], Callable[[str], list[Row]]]] = [
    (
        "caller cost, calling thread's CPU",
        ["caller_cost.py", "--clock", "thread"],
        caller_cost,
    ),
    (
        "caller cost, wall time",
        ["caller_cost.py", "--clock", "wall"],
        caller_cost,
    ),
    (
        "caller cost, instructions on the calling thread",
        ["instructions.py"],
        instructions,
    ),
    ("delivery throughput", ["throughput.py"], throughput),
    ("memory, tracker away", ["memory.py"], memory),
    ("span export cost", ["export_cost.py"], export_cost),
    ("price of the spool", ["spool_cost.py"], spool_cost),
    ("Redis spool, SQLite spool, memory", ["redis_cost.py"], redis_cost),
]


def run(title: str, arguments: list[str], parse: Callable) -> Result:
    """Run one benchmark from this folder and read its figures."""
    command = " ".join(["python", *arguments])
    print(f"running {command} ...", flush=True)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, *arguments],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode:
        raise SystemExit(f"{command} failed:\n{done.stdout}{done.stderr}")

    rows = parse(done.stdout)
    # A benchmark whose tool is missing says so, and adds no rows.
    if not rows and not done.stdout.rstrip().endswith("skipped"):
        raise SystemExit(f"{command}: no figures found in\n{done.stdout}")

    return Result(title, command, done.stdout, seconds, rows)


def machine() -> str:
    """Describe this machine: CPUs and their model, Python, the system."""
    model = "an unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cpus = (
        len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count()
    )

    return (
        f"{cpus} CPUs (nproc) of {model}; "
        f"{platform.python_implementation()} {platform.python_version()}; "
        f"{platform.system()} {platform.release()}"
    )


def table(results: list[Result]) -> list[str]:
    """Lay the rows of every benchmark out as one Markdown table."""
    lines = [
        "| benchmark | case | value | ratio | against | target |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        lines += [
            f"| {result.title} | {row.case} | {row.value} | {row.ratio} "
            f"| {row.against} | {row.target} |"
            for row in result.rows
        ]

    return lines


README = HERE.parent / "README.md"
_NUMBERS = re.compile(
    r"(<!-- numbers:start -->\n).*?(<!-- numbers:end -->)", re.DOTALL
)


def measured_on() -> str:
    """Say when, where and how the figures were measured."""
    return (
        f"Measured on {datetime.date.today().isoformat()}, on "
        f"{machine()}, by `python bench/report.py`: each benchmark in its "
        "own process, one after another, one run each. Read the ratios; "
        "they hold from machine to machine far better than the absolute "
        "figures."
    )


def update_readme(results: list[Result], readme: Path = README) -> None:
    """Put the table between the README's ``numbers`` markers."""
    text = readme.read_text()
    section = "\n".join([measured_on(), "", *table(results), ""])
    updated, found = _NUMBERS.subn(
        lambda match: f"{match[1]}{section}{match[2]}", text
    )
    if not found:
        raise SystemExit(f"{readme}: no <!-- numbers:start --> marker")
    readme.write_text(updated)


def document(results: list[Result]) -> str:
    """Write the whole of RESULTS.md: header, table, raw outputs."""
    lines = [
        "# Benchmark results",
        "",
        measured_on(),
        "",
        *table(results),
        "",
        "## Raw output",
    ]
    for result in results:
        lines += [
            "",
            f"### `{result.command}` ({result.seconds:.0f} s)",
            "",
            "```",
            result.output.strip(),
            "```",
        ]

    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--output",
        type=Path,
        default=HERE / "RESULTS.md",
        help="where to write the Markdown (default: bench/RESULTS.md)",
    )
    parser.add_argument(
        "--no-readme",
        action="store_true",
        help="leave the README's Numbers section as it is",
    )
    args = parser.parse_args()

    results = [run(*benchmark) for benchmark in BENCHMARKS]
    text = document(results)
    args.output.write_text(text)
    if not args.no_readme:
        update_readme(results)
    print(f"\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
