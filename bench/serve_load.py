"""A small closed-loop HTTP/1.1 load generator for the serving benchmark (standard library only).

Usage: serve_load.py URL BODY_FILE CONCURRENCY SECONDS [--warmup SECONDS]

CONCURRENCY clients each hold one keep-alive connection and send the same POST
(body from BODY_FILE, JSON) again as soon as the previous answer arrives, for
SECONDS after a warm-up. Prints one JSON line: requests, errors (non-200 or broken
connections), elapsed seconds and the latencies' p50 and p99 in milliseconds.
Requests are pre-encoded and answers parsed only as far as Content-Length, so the
client spends as little CPU as it can on the machine it shares with the server.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from urllib.parse import urlsplit


async def client(
    host: str, port: int, request: bytes, until: float, record_from: float, latencies: list[float]
) -> int:
    errors = 0
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            start = time.perf_counter()
            if start >= until:
                return errors
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            status = int(head.split(b" ", 2)[1])
            if start >= record_from:
                if status == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1
            if b"connection: close" in head.lower():
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    except (ConnectionError, asyncio.IncompleteReadError):
        return errors + 1
    finally:
        writer.close()


async def run(
    url: str, body: bytes, concurrency: int, seconds: float, warmup: float
) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    now = time.perf_counter()
    record_from, until = now + warmup, now + warmup + seconds
    errors = await asyncio.gather(
        *(client(host, port, request, until, record_from, latencies) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - record_from
    ordered = sorted(latencies)

    def quantile(q: float) -> float:
        return (
            1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]
            if ordered
            else float("nan")
        )

    return {
        "requests": len(ordered),
        "errors": sum(errors),
        "seconds": elapsed,
        "rps": len(ordered) / elapsed,
        "p50_ms": quantile(0.50),
        "p99_ms": quantile(0.99),
        "mean_ms": 1000 * statistics.fmean(ordered) if ordered else float("nan"),
    }


def main() -> None:
    url, body_file, concurrency, seconds = sys.argv[1:5]
    warmup = float(sys.argv[sys.argv.index("--warmup") + 1]) if "--warmup" in sys.argv else 1.0
    with open(body_file, "rb") as handle:
        body = handle.read()
    result = asyncio.run(run(url, body, int(concurrency), float(seconds), warmup))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
