"""Memory soak: `python -m bench.memory [--large 500] [--short 100000] [--quick]`.

Requests that each leave something different behind, against `mock-llm-sse serve` in its own
process: `--large` requests with distinct prompts of about 1 MB (half answered "ok", half echoed
back in big chunks, so both the timeline and the render cache see large entries), and `--short`
distinct requests answered with a scripted HTTP 500 (timelines of no steps). It prints the server's
RSS after a warm-up (100 large requests, which fill the caches, and a fifth of the short ones), at
the end and after `POST /_mock/reset`, and exits 1 when RSS grew by more than `--max-growth` after
the warm-up: the caches are bounded in bytes, so it should stay flat. Every `--rounds`th of the requests it
waits a quiet second and a half, in which the server freezes what survived (http/collector.py), so
that it also shows that frozen cache entries and records are freed once evicted.

The journal keeps each record's body; until it is bounded in bytes as well, the server runs with
`--journal-size 10` so that the figure shows the caches, not the journal's last 1,000 bodies.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx

from bench import procs

PROMPT_CHARS = 1_000_000
WARM_UP_LARGE = 100
"""Enough large requests to fill both caches (32 MiB each; an echoed 1 MB prompt costs about 2 MB of
timeline and 1 MB of rendered stream)."""
JOURNAL_SIZE = 10
QUIET_S = 1.5
"""Longer than the quiet second after which the server freezes its survivors."""
SCENARIOS = {
    "answer-ok": {"reply": "ok"},
    "echo-big": {"reply": "{prompt}", "chunk": 100_000},
}


def large_requests(client: httpx.Client, numbers: Iterable[int]) -> None:
    base = "word " * (PROMPT_CHARS // 5)
    for n in numbers:
        scenario = "echo-big" if n % 2 else "answer-ok"
        body = {"model": "gpt-4o", "scenario": scenario, "messages": [{"role": "user", "content": f"{n} {base}"}]}
        response = client.post("/v1/chat/completions", content=json.dumps(body), headers=JSON)
        response.raise_for_status()


def short_requests(client: httpx.Client, numbers: Iterable[int]) -> None:
    for n in numbers:
        response = client.get("/completions", params={"messages": f"short {n}", "fault": "status:500"})
        if response.status_code != 500:
            raise RuntimeError(f"expected the scripted 500, got {response.status_code}: {response.text[:200]}")


JSON = {"Content-Type": "application/json", "X-Mock-Chunk-Ms": "0"}


def in_rounds(
    send: Callable[[httpx.Client, Iterable[int]], None], client: httpx.Client, numbers: range, rounds: int
) -> None:
    """`send` the requests `numbers` in `rounds` rounds, with a quiet pause after each (none: all at once)."""
    if not rounds:
        send(client, numbers)
        return
    size = max(1, -(-len(numbers) // rounds))
    for start in range(numbers.start, numbers.stop, size):
        send(client, range(start, min(start + size, numbers.stop)))
        time.sleep(QUIET_S)


def run(large: int, short: int, max_growth: float, rounds: int = 0) -> int:
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as empty:
        process = procs.start_mock(port, Path(empty), "--journal-size", str(JOURNAL_SIZE))
        try:
            procs.wait_until_answering(url + "/_mock/health", process)
            with httpx.Client(base_url=url, timeout=60) as client:
                for name, scenario in SCENARIOS.items():
                    client.put(f"/_mock/scenarios/{name}", json=scenario).raise_for_status()
                started = time.monotonic()
                large_warm, short_warm = min(large, WARM_UP_LARGE), short // 5
                in_rounds(large_requests, client, range(large_warm), rounds)
                in_rounds(short_requests, client, range(short_warm), rounds)
                warm = procs.rss_mb(process.pid)
                in_rounds(large_requests, client, range(large_warm, large), rounds)
                in_rounds(short_requests, client, range(short_warm, short), rounds)
                end = procs.rss_mb(process.pid)
                seconds = time.monotonic() - started
                client.post("/_mock/reset").raise_for_status()
                after_reset = procs.rss_mb(process.pid)
        finally:
            procs.stop(process)
    growth = end / warm
    print(f"{large:,} requests with distinct ~1 MB prompts, {short:,} distinct status-500 requests, {seconds:.0f} s")
    print(f"server RSS after warm-up ({large_warm:,} + {short_warm:,}): {warm:.0f} MB")
    print(f"server RSS at the end:                {end:.0f} MB  ({growth:.2f}x the warm-up)")
    print(f"server RSS after POST /_mock/reset:   {after_reset:.0f} MB")
    if growth > max_growth:
        print(f"PROBLEM: RSS grew {growth:.2f}x after the warm-up (allowed: {max_growth:.2f}x)")
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", type=int, default=500, help="requests with distinct ~1 MB prompts")
    parser.add_argument("--short", type=int, default=100_000, help="distinct requests answered 500")
    parser.add_argument("--max-growth", type=float, default=1.2, help="largest RSS ratio end / warm-up accepted")
    parser.add_argument("--rounds", type=int, default=5, help="quiet pauses in each batch of requests (0: none)")
    parser.add_argument("--quick", action="store_true", help="200 large and 10,000 short requests")
    args = parser.parse_args()
    if args.quick:
        args.large, args.short = 200, 10_000
    sys.exit(run(args.large, args.short, args.max_growth, args.rounds))


if __name__ == "__main__":
    main()
