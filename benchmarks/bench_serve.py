"""Load test of ``distill serve``: a fresh server on loopback per setting, N clients for a bounded time.

Usage:
    python benchmarks/bench_serve.py MODEL_DIR --data ../shared/data/resume \\
        [--runtime onnx-int8] [--concurrency 1,8,32] [--seconds 10] [--windows 2,0] --out DIR

For each micro-batching window (milliseconds; 0: off) and each concurrency, a server is started,
and that many clients (asyncio, one keep-alive connection each, in this process) send one test
sentence per request, back to back, for ``--seconds``. Reported per setting: requests/s and
sentences/s, latency p50/p95/p99, errors (any answer but 200), the batches the server formed,
and the server's peak resident memory (VmHWM). Writes DIR/serve.json, DIR/serve.md and
DIR/manifest.json with the command, the machine and the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from timing import command_line, commit, write_manifest

from distill.benchmark.worker import process_peak_rss_mb
from distill.data import load_dataset
from distill.environment import describe_environment, machine_line

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.tiny import free_port, started_server  # noqa: E402 - the test helpers start servers the same way


async def _client(port: int, bodies: list[bytes], offset: int, stop_at: float, latencies: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = offset
    try:
        while time.perf_counter() < stop_at:
            body = bodies[sent % len(bodies)]
            sent += 1
            head = "POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            head += f"Content-Length: {len(body)}\r\n\r\n"
            started = time.perf_counter()
            writer.write(head.encode() + body)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def _load(port: int, bodies: list[bytes], clients: int, seconds: float) -> tuple[list[float], list[int], float]:
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(_client(port, bodies, i * 7, stop_at, latencies, errors) for i in range(clients)))
    return latencies, errors, time.perf_counter() - started


def run(main):
    """The clients' event loop: uvloop's where installed (as the server's), so that on a machine of few
    cores the clients take as little of them as they can."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def measure(args: argparse.Namespace, window: float, clients: int, bodies: list[bytes]) -> dict:
    port = free_port()
    command = [
        sys.executable, "-m", "distill", "serve", args.model, "--port", port, "--runtime", args.runtime,
        "--batch-window-ms", window, "--threads", args.threads, "--max-batch", args.max_batch,
    ]  # fmt: skip
    server = started_server(command, port)
    try:
        run(_load(port, bodies[:50], min(clients, 4), 1.0))  # warm-up, not counted
        before = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health").read())
        latencies, errors, elapsed = run(_load(port, bodies, clients, args.seconds))
        after = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health").read())
        peak = process_peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0]] * 99
    batches = after["batches"] - before["batches"]
    return {
        "batch_window_ms": window,
        "clients": clients,
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "sentences_per_second": round(len(latencies) / elapsed, 1),  # one sentence a request
        "latency_ms": {name: round(quantiles[q - 1] * 1000, 2) for name, q in (("p50", 50), ("p95", 95), ("p99", 99))},
        "errors": len(errors),
        "batches": batches,
        "requests_per_batch": round((after["requests"] - before["requests"]) / max(batches, 1), 2),
        "server_peak_rss_mb": round(peak, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--runtime", default="onnx-int8")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--windows", default="2,0", help="Micro-batching windows in ms (0: off).")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=1, help="The server's runtime threads.")
    parser.add_argument("--max-batch", type=int, default=32, help="The server's --max-batch.")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sentences, _ = load_dataset(args.data).load(args.split)
    bodies = [json.dumps({"texts": [s.text]}, ensure_ascii=False).encode() for s in sentences if len(s.text)]
    runs = []
    for window in (float(w) for w in args.windows.split(",")):
        for clients in (int(c) for c in args.concurrency.split(",")):
            runs.append(measure(args, window, clients, bodies))
            print(json.dumps(runs[-1]), flush=True)
    environment = describe_environment()
    record = {
        "command": command_line(),
        "machine": machine_line(environment),
        "commit": commit(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "model": str(args.model),
        "runtime": args.runtime,
        "server_threads": args.threads,
        "seconds_per_setting": args.seconds,
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve.json").write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    lines = [
        f"# distill serve under load: {args.model.name} ({args.runtime})",
        "",
        f"`{record['command']}` on {record['machine']}, commit {record['commit'][:10]}, {record['date']}. "
        f"Clients in one process on the same machine (loopback), one test sentence per request, "
        f"{args.seconds:g} s per setting.",
        "",
        "| micro-batching window | clients | requests/s | p50 ms | p95 ms | p99 ms | errors | requests per batch "
        "| server peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        latency = run["latency_ms"]
        window = f"{run['batch_window_ms']:g} ms" if run["batch_window_ms"] else "off"
        lines.append(
            f"| {window} | {run['clients']} | {run['requests_per_second']:,.0f} | {latency['p50']} | {latency['p95']} "
            f"| {latency['p99']} | {run['errors']} | {run['requests_per_batch']} | {run['server_peak_rss_mb']} |"
        )
    (args.out / "serve.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_manifest(args.out, environment, ["serve.md", "serve.json"])
    print(f"wrote {args.out / 'serve.md'}")


if __name__ == "__main__":
    main()
