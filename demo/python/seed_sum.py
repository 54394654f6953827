"""The seed's experiment in Python, measured on this machine: add N ones four ways.

Usage: python3 seed_sum.py N CHUNKS RUNS  -> prints one JSON object of median seconds.
"""
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor


def plain_loop(xs):
    total = 0
    for x in xs:
        total += x
    return total


def chunk_sum(chunk):
    return sum(chunk)


def split(xs, n):
    size, extra = divmod(len(xs), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(xs[start:end])
        start = end
    return out


def chunked_serial(chunks):
    return sum(chunk_sum(c) for c in chunks)


def on_threads(chunks):
    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        return sum(pool.map(chunk_sum, chunks))


def on_processes(chunks):
    with ProcessPoolExecutor(max_workers=len(chunks)) as pool:
        return sum(pool.map(chunk_sum, chunks))


def median_seconds(f, arg, runs, expected):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = f(arg)
        times.append(time.perf_counter() - start)
        assert result == expected, (f.__name__, result)
    return statistics.median(times)


if __name__ == "__main__":
    n, chunks, runs = (int(a) for a in sys.argv[1:4])
    xs = [1] * n
    parts = split(xs, chunks)
    print(json.dumps({
        "plain_loop": median_seconds(plain_loop, xs, runs, n),
        "chunked_serial": median_seconds(chunked_serial, parts, runs, n),
        "threads": median_seconds(on_threads, parts, runs, n),
        "processes": median_seconds(on_processes, parts, runs, n),
    }))
