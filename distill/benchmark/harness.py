"""``distill benchmark``: every model and variant on the same test set, each in a fresh process.

For each model directory (teacher or student), each runtime variant that applies (torch, bf16 and
int8 for teachers; torch, int8, onnx and onnx-int8 for students) and each device asked for, a worker process
measures latency, throughput, peak memory and load time and tags the test set (with
``rounds`` > 1, every run again in each round, in turn); this process scores the tags (seqeval),
checks that variants agree with their PyTorch original, and writes the report.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from distill.artifacts import CONFIG, read_config, weight_files
from distill.data import convert_tags, label_scheme, load_dataset
from distill.environment import describe_environment
from distill.errors import DistillError
from distill.metrics import calibration, entity_scores

from .config import BenchmarkConfig
from .report import recommend, write_report

SCHEMA_VERSION = 1
VARIANTS = {"teacher": ("torch", "bf16", "int8"), "student": ("torch", "int8", "onnx", "onnx-int8")}


def _parameters(weights_files: list[Path]) -> int:
    from safetensors import safe_open

    total = 0
    for path in weights_files:
        with safe_open(str(path), "np") as weights:
            for name in weights.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                count = 1
                for dim in weights.get_slice(name).get_shape():
                    count *= dim
                total += count
    return total


def _unavailable(device: str, runtime: str, cuda: bool) -> str | None:
    if device.startswith("cuda") and not cuda:
        return "CUDA is not available on this machine"
    if device.startswith("cuda") and runtime == "int8":
        return "PyTorch dynamic INT8 quantisation runs on the CPU only"
    if device.startswith("cuda") and runtime.startswith("onnx"):
        return "the ONNX runtime here is onnxruntime's CPU build"
    return None


def run_benchmark(cfg: BenchmarkConfig, command: str = "") -> dict:
    """Measure, score, recommend, and write ``report.json``, ``report.md`` and ``pareto.png``."""
    import torch

    cfg.out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    dataset = load_dataset(cfg.data)
    sentences, _ = dataset.load(cfg.split)
    gold_sentences = [s for s in sentences if len(s.text) > 0]
    plan = []
    for name, model_dir in cfg.models:
        config = read_config(model_dir)
        kind = config["kind"]
        for runtime in VARIANTS.get(kind, ()):
            if runtime in cfg.variants:
                plan.extend((name, Path(model_dir), config, runtime, device) for device in cfg.devices)
    if not plan:
        raise DistillError("nothing to measure: give --model directories and at least one applicable --variants")

    runs: list[dict] = []
    pending: list[tuple[int, dict, list[str]]] = []  # (index in runs, worker spec, labels) of the runs to measure
    onnx_dirs: dict[str, Path] = {}
    for name, model_dir, config, runtime, device in plan:
        weights = weight_files(model_dir, config)
        record = {
            "model": name,
            "path": str(model_dir),
            "kind": config["kind"],
            "variant": runtime,
            "device": device,
            "status": "ok",
            "size": {
                "parameters": _parameters(weights),
                "bytes_on_disk": sum(path.stat().st_size for path in weights) + (model_dir / CONFIG).stat().st_size,
            },
            "distillation": config.get("distillation"),
            "architecture": config.get("architecture"),
        }
        reason = _unavailable(device, runtime, cuda)
        if reason:
            runs.append(record | {"status": "unavailable", "reason": reason})
            continue
        onnx_dir = None
        if runtime.startswith("onnx"):
            from distill.student.export import export_onnx
            from distill.student.onnx_runtime import ONNX_FILE, ONNX_INT8_FILE

            if name not in onnx_dirs:  # exported afresh by each run: an earlier run's may be an older exporter's
                onnx_dirs[name] = cfg.out / "onnx" / name
                export_onnx(model_dir, onnx_dirs[name])
            onnx_dir = onnx_dirs[name]
            graph = onnx_dir / (ONNX_INT8_FILE if runtime == "onnx-int8" else ONNX_FILE)
            record["size"]["bytes_on_disk"] = graph.stat().st_size + (model_dir / CONFIG).stat().st_size
        if runtime == "int8":
            record["size"]["bytes_on_disk"] = None  # quantised at load time, never stored
        spec = {
            "model": str(model_dir),
            "runtime": runtime,
            "device": device,
            "onnx_dir": str(onnx_dir) if onnx_dir else None,
            "data": cfg.data,
            "split": cfg.split,
            "warmup": cfg.warmup,
            "latency_sentences": cfg.latency_sentences,
            "batch_sizes": cfg.batch_sizes,
            "throughput_repeats": cfg.throughput_repeats,
            "threads": cfg.threads,
        }
        runs.append(record)
        pending.append((len(runs) - 1, spec, config["labels"]))

    results: dict[int, list[dict]] = {index: [] for index, _, _ in pending}
    progress = tqdm(total=len(pending) * cfg.rounds, desc="benchmark", unit="run")
    for _ in range(cfg.rounds):
        for index, spec, _ in pending:
            progress.set_postfix_str(f"{runs[index]['model']} {spec['runtime']} {spec['device']}")
            if not any("error" in r for r in results[index]):  # a run that failed once is not tried again
                results[index].append(_run_worker(spec, cfg.timeout))
            progress.update()
    progress.close()
    gold_tags: dict[str, list[list[str]]] = {}  # the test set's tags in each scheme a model uses, made once
    for index, _, labels in pending:
        failure = next((r["error"] for r in results[index] if "error" in r), None)
        if failure:
            runs[index] |= {"status": "failed", "reason": failure}
            continue
        result = combine_rounds(results[index])
        scheme = label_scheme(labels)
        if scheme not in gold_tags:
            gold_tags[scheme] = [convert_tags(s.tags, scheme) for s in gold_sentences]
        tags = result.pop("predicted_tags")
        scores = entity_scores(gold_tags[scheme], tags)
        reliability = calibration(gold_tags[scheme], result.pop("entity_confidences"))
        runs[index] |= result | {"accuracy": scores.as_dict(), "calibration": reliability, "_tags": tags}
    _agreement(runs)
    report = {
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "environment": describe_environment() | {"cuda": cuda},
        "data": {
            "path": cfg.data or "default",
            "split": cfg.split,
            "sentences": len(gold_sentences),
            "characters": sum(len(s.text) for s in gold_sentences),
        },
        "settings": {k: v for k, v in cfg.__dict__.items() if k not in ("models", "out")},
        "runs": runs,
    }
    report["settings"]["models"] = [[n, str(p)] for n, p in cfg.models]
    report["recommendation"] = recommend(runs, cfg.max_f1_drop)
    write_report(report, cfg.out)
    return report


def combine_rounds(results: list[dict]) -> dict:
    """One run's figures from its rounds' workers: the median over rounds of each latency
    percentile, throughput and load time, the largest peak memory, and each round's p50 and
    sentences/s (the spread between rounds). Tags come from the first round (the others tag alike)."""
    if len(results) == 1:
        return results[0]
    first = results[0]
    latency = {key: statistics.median(r["latency_ms"][key] for r in results) for key in first["latency_ms"]}
    throughput = {}
    for size, figures in first["throughput"].items():
        per_round = [r["throughput"][size] for r in results]
        throughput[size] = {
            key: statistics.median(f[key] for f in per_round) for key in figures if key != "spread_seconds"
        }
        throughput[size]["spread_seconds"] = [
            min(f["spread_seconds"][0] for f in per_round),
            max(f["spread_seconds"][1] for f in per_round),
        ]
        throughput[size]["sentences_per_second_by_round"] = [f["sentences_per_second"] for f in per_round]
    cuda_peaks = [r["memory"]["cuda_peak_mb"] for r in results if r["memory"]["cuda_peak_mb"] is not None]
    return first | {
        "load_seconds": statistics.median(r["load_seconds"] for r in results),
        "latency_ms": latency | {"p50_by_round": [r["latency_ms"]["p50"] for r in results]},
        "throughput": throughput,
        "memory": {
            "peak_rss_mb": max(r["memory"]["peak_rss_mb"] for r in results),
            "cuda_peak_mb": max(cuda_peaks) if cuda_peaks else None,
        },
        "rounds": len(results),
    }


def _run_worker(spec: dict, timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        env = dict(os.environ)
        if spec["threads"]:
            env["OMP_NUM_THREADS"] = str(spec["threads"])
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "distill.benchmark.worker", str(spec_path), str(out_path)],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s"}
        if proc.returncode != 0 or not out_path.exists():
            return {"error": (proc.stderr.strip().splitlines() or ["worker failed"])[-1]}
        result = json.loads(out_path.read_text(encoding="utf-8"))
    result["predicted_tags"] = result.pop("predicted")
    return result


def _agreement(runs: list[dict]) -> None:
    """For each run of another variant, how often it tags exactly as its model's PyTorch run on the same device."""
    # Predictions are dropped from the report after this (they are large); keep them per run here.
    reference = {(r["model"], r["device"]): r for r in runs if r["variant"] == "torch" and r["status"] == "ok"}
    for run in runs:
        if run["status"] != "ok" or run["variant"] == "torch":
            continue
        base = reference.get((run["model"], "cpu")) or reference.get((run["model"], run["device"]))
        if base is None:
            continue
        same = sum(a == b for a, b in zip(run["_tags"], base["_tags"]))
        chars = sum(x == y for a, b in zip(run["_tags"], base["_tags"]) for x, y in zip(a, b))
        total_chars = sum(len(a) for a in base["_tags"])
        run["agreement"] = {
            "sentences": same / len(base["_tags"]),
            "characters": chars / total_chars,
            "reference": f"{base['model']} torch {base['device']}",
        }
    for run in runs:
        run.pop("_tags", None)
