"""One measurement in a fresh process: load a model, time it, report peak memory, tag the test set.

Run as ``python -m distill.benchmark.worker SPEC.json RESULT.json`` by the harness, so that each
model's memory figures are its own. Imports only what the model's runtime needs: an ONNX run never
imports torch, and scoring (seqeval) is left to the parent process.
"""

from __future__ import annotations

import json
import random
import resource
import statistics
import sys
import time
from pathlib import Path


def _percentiles(times_ms: list[float]) -> dict:
    ordered = sorted(times_ms)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "mean": statistics.fmean(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "calls": len(ordered),
    }


def _status_mb(field: str, process: int | str = "self") -> float | None:
    """A memory field of /proc/PROCESS/status (``VmHWM``, ``VmRSS``) in MiB; None off Linux."""
    try:
        with open(f"/proc/{process}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB.

    Linux's VmHWM starts afresh at exec; ``ru_maxrss`` would carry the parent's peak over from the
    fork, which is why it is only the fallback.
    """
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_peak_rss_mb(pid: int) -> float | None:
    """Another live process's peak resident memory in MiB (None off Linux)."""
    return _status_mb("VmHWM", pid)


def rss_mb() -> float | None:
    """This process's resident memory now, in MiB (None off Linux)."""
    return _status_mb("VmRSS")


def measure(spec: dict) -> dict:
    from distill.api import load_model
    from distill.data import load_dataset
    from distill.tagging import confident_tagger, tag_in_batches

    sentences, _ = load_dataset(spec["data"]).load(spec["split"])
    texts = [s.text for s in sentences if len(s.text) > 0]
    cuda = spec["device"].startswith("cuda")
    if not spec["runtime"].startswith("onnx"):
        import torch

        if spec.get("threads"):
            torch.set_num_threads(spec["threads"])
        if cuda:
            torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    model = load_model(spec["model"], spec["device"], spec["runtime"], spec.get("onnx_dir"), spec.get("threads") or 0)
    load_seconds = time.perf_counter() - started

    def synchronize() -> None:
        if cuda:
            import torch

            torch.cuda.synchronize()

    for text in texts[: spec["warmup"]]:
        model.predict([text])
    # The test sentences in a fixed shuffled order, cycled if fewer than the calls asked for.
    shuffled = list(texts)
    random.Random(0).shuffle(shuffled)
    sample = [shuffled[i % len(shuffled)] for i in range(spec["latency_sentences"])]
    times = []
    for text in sample:
        synchronize()
        start = time.perf_counter()
        model.predict([text])
        synchronize()
        times.append((time.perf_counter() - start) * 1000)
    latency = _percentiles(times) | {
        "mean_chars": statistics.fmean(len(t) for t in sample),
        "distinct_sentences": min(len(shuffled), len(sample)),
    }

    throughput = {}
    characters = sum(len(t) for t in texts)
    for batch_size in spec["batch_sizes"]:
        runs = []
        for _ in range(spec["throughput_repeats"]):
            synchronize()
            start = time.perf_counter()
            model.predict(texts, batch_size=batch_size)
            synchronize()
            runs.append(time.perf_counter() - start)
        seconds = statistics.median(runs)
        throughput[str(batch_size)] = {
            "sentences_per_second": len(texts) / seconds,
            "chars_per_second": characters / seconds,
            "seconds": seconds,
            "spread_seconds": [min(runs), max(runs)],
        }

    # Memory is that of the predict path, taken before the scoring pass below: scoring tags each
    # test sentence whole, to match its gold tags, where predict splits a long text at sentence
    # ends, so a long test sentence would raise the peak beyond what serving needs.
    memory = {"peak_rss_mb": peak_rss_mb(), "cuda_peak_mb": None}
    if cuda:
        import torch

        memory["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    scored = tag_in_batches(
        confident_tagger(model.scored, model.labels), texts, 64, model.workers, model.max_batch_chars
    )
    paths = [path for path, _, _ in scored]
    entities = [  # per sentence: [type, start, end, confidence] of each entity, for calibration
        [[span.type, span.start, span.end, p] for span, p in zip(spans, found)] for _, spans, found in scored
    ]
    return {
        "load_seconds": load_seconds,
        "latency_ms": latency,
        "throughput": throughput,
        "memory": memory,
        "predicted": [[model.labels[i] for i in row] for row in paths],
        "entity_confidences": entities,
        "torch_imported": "torch" in sys.modules,
        "threads": _threads(spec),
    }


def _threads(spec: dict) -> int | None:
    if spec["runtime"].startswith("onnx"):
        return spec.get("threads") or None
    import torch

    return torch.get_num_threads()


def main() -> None:
    spec_path, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    result = measure(spec)
    out_path.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
