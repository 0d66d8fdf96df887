"""The benchmark harness and the torch-free deployment path, on tiny models."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from distill.api import load_model
from distill.benchmark import harness
from distill.benchmark.config import BenchmarkConfig
from distill.benchmark.harness import SCHEMA_VERSION, combine_rounds, run_benchmark
from distill.benchmark.report import recommend, recommendation_line, render, serving_commands
from distill.cpus import cgroup_cpu_limit, usable_cores
from distill.environment import machine_line
from distill.student.config import StudentTrainConfig
from distill.student.export import export_onnx
from distill.student.train import train_student

RUN_FIELDS = {
    "model",
    "path",
    "kind",
    "variant",
    "device",
    "status",
    "size",
    "load_seconds",
    "latency_ms",
    "throughput",
    "memory",
    "accuracy",
    "threads",
    "torch_imported",
}


@pytest.fixture(scope="module")
def student_dir(tiny_teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "student"
    train_student(StudentTrainConfig(out=out, cache=tiny_teacher["cache"], epochs=6, hidden=16, embedding_dim=16))
    return out


@pytest.fixture(scope="module")
def report(tiny_teacher, student_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    cfg = BenchmarkConfig(
        models=[("teacher", tiny_teacher["teacher"]), ("student", student_dir)],
        out=out,
        data=str(tiny_teacher["data"]),
        devices=["cpu", "cuda"],
        latency_sentences=20,
        warmup=2,
        batch_sizes=[4, 16],
        throughput_repeats=2,
        threads=1,
    )
    return run_benchmark(cfg, "distill benchmark (test)"), out


def test_report_has_every_field_and_a_stable_schema(report):
    data, out = report
    assert data["schema_version"] == SCHEMA_VERSION
    assert {"created", "command", "environment", "data", "settings", "runs", "recommendation"} <= set(data)
    assert {"cpu", "cores", "versions", "cuda", "torch_threads"} <= set(data["environment"])
    ok = [r for r in data["runs"] if r["status"] == "ok"]
    assert {(r["model"], r["variant"]) for r in ok} == {
        ("teacher", "torch"),
        ("teacher", "bf16"),
        ("teacher", "int8"),
        ("student", "torch"),
        ("student", "int8"),
        ("student", "onnx"),
        ("student", "onnx-int8"),
    }
    for run in ok:
        assert set(run) >= RUN_FIELDS, RUN_FIELDS - set(run)
        assert {"p50", "p95", "p99", "mean", "calls"} <= set(run["latency_ms"]) and run["latency_ms"]["calls"] == 20
        assert run["latency_ms"]["p50"] <= run["latency_ms"]["p95"] <= run["latency_ms"]["p99"]
        assert set(run["throughput"]) == {"4", "16"} and run["throughput"]["16"]["sentences_per_second"] > 0
        assert run["memory"]["peak_rss_mb"] > 10
        assert (run["memory"]["cuda_peak_mb"] is None) == (run["device"] == "cpu")
        assert {"precision", "recall", "f1", "support"} <= set(run["accuracy"]["overall"])
        assert run["size"]["parameters"] > 0
    assert (
        (out / "report.json").exists() and (out / "report.md").exists() and (out / "pareto.png").stat().st_size > 1000
    )
    assert "throughput: the median of 2 passes over the whole test set" in (out / "report.md").read_text()


def test_the_report_says_how_well_confidences_are_calibrated(report):
    data, out = report
    for run in [r for r in data["runs"] if r["status"] == "ok"]:
        figures = run["calibration"]
        assert figures["entities"] > 0 and 0 <= figures["ece"] <= 1 and len(figures["bins"]) == 10
        assert sum(b["count"] for b in figures["bins"]) == figures["entities"]
    assert "ECE" in (out / "report.md").read_text() and (out / "reliability.png").stat().st_size > 1000


def test_cuda_column_is_honest_when_absent(report):
    data, _ = report
    cuda_runs = [r for r in data["runs"] if r["device"] == "cuda"]
    assert cuda_runs
    if not torch.cuda.is_available():
        assert all(r["status"] == "unavailable" and "CUDA is not available" in r["reason"] for r in cuda_runs)
        assert all("latency_ms" not in r for r in cuda_runs)
        assert "CUDA: not available" in (report[1] / "report.md").read_text()
        return
    # On a GPU: torch and bf16 measured there with their device memory; int8 and onnx (CPU
    # runtimes) marked unavailable with the reason.
    measured = {(r["model"], r["variant"]) for r in cuda_runs if r["status"] == "ok"}
    assert measured == {("teacher", "torch"), ("teacher", "bf16"), ("student", "torch")}
    assert all(r["memory"]["cuda_peak_mb"] > 0 for r in cuda_runs if r["status"] == "ok")
    assert all(r["reason"] for r in cuda_runs if r["status"] == "unavailable")
    assert torch.cuda.get_device_name() in (report[1] / "report.md").read_text()


def test_onnx_agrees_with_pytorch_and_never_imports_torch(report):
    data, _ = report
    onnx = next(r for r in data["runs"] if r["variant"] == "onnx" and r["status"] == "ok")
    assert onnx["agreement"]["sentences"] == 1.0 and onnx["torch_imported"] is False
    int8 = next(r for r in data["runs"] if r["variant"] == "onnx-int8" and r["status"] == "ok")
    assert int8["torch_imported"] is False and 0 < int8["size"]["bytes_on_disk"] < onnx["size"]["bytes_on_disk"]
    assert int8["agreement"]["characters"] > 0.5  # quantised weights: close to, not always equal to, PyTorch
    torch_run = next(
        r for r in data["runs"] if r["model"] == "student" and r["variant"] == "torch" and r["device"] == "cpu"
    )
    assert onnx["accuracy"]["overall"]["f1"] == pytest.approx(torch_run["accuracy"]["overall"]["f1"])
    assert torch_run["torch_imported"] is True


def test_report_renders_again_from_json(report):
    _, out = report
    before = (out / "report.md").read_text()
    (out / "report.md").unlink()
    render(out)
    assert (out / "report.md").read_text() == before
    assert "Deploy **" in before and "| model | variant | device | F1 |" in before
    rec = report[0]["recommendation"]
    served = next(r for r in report[0]["runs"] if f"{r['model']} [{r['variant']}, {r['device']}]" == rec["label"])
    assert f"distill serve {served['path']} --runtime {rec['variant']}" in before


def test_the_report_gives_the_commands_that_serve_its_choice():
    def report(model: str, variant: str, device: str) -> dict:
        run = {"model": model, "variant": variant, "device": device, "status": "ok", "path": "runs/my model"}
        return {"runs": [run], "recommendation": {"label": f"{model} [{variant}, {device}]"}}

    assert serving_commands(report("student", "onnx-int8", "cpu")) == [
        "distill export 'runs/my model' --format onnx",
        "distill serve 'runs/my model' --runtime onnx-int8 --port 8080",
    ]
    assert serving_commands(report("teacher", "bf16", "cuda")) == [
        "distill serve 'runs/my model' --runtime bf16 --device cuda --port 8080"
    ]
    assert serving_commands({"runs": [], "recommendation": None}) == []


def _worker_result(p50, per_second, rss, tags):
    return {
        "load_seconds": p50 / 10,
        "latency_ms": {"p50": p50, "p95": 2 * p50, "p99": 3 * p50, "mean": p50, "calls": 20},
        "throughput": {
            "16": {
                "sentences_per_second": per_second,
                "chars_per_second": 30 * per_second,
                "seconds": 1 / per_second,
                "spread_seconds": [0.5, 2],
            }
        },
        "memory": {"peak_rss_mb": rss, "cuda_peak_mb": None},
        "predicted_tags": tags,
        "entity_confidences": [[] for _ in tags],
        "torch_imported": False,
        "threads": 1,
    }


def test_rounds_combine_into_medians_with_their_spread():
    rounds = [_worker_result(1.0, 300, 90.0, [["O"]]), _worker_result(3.0, 100, 95.0, [["B-X"]])]
    rounds.append(_worker_result(2.0, 200, 80.0, [["I-X"]]))
    combined = combine_rounds(rounds)
    assert combined["latency_ms"]["p50"] == 2.0 and combined["latency_ms"]["p99"] == 6.0
    assert combined["latency_ms"]["p50_by_round"] == [1.0, 3.0, 2.0] and combined["rounds"] == 3
    figures = combined["throughput"]["16"]
    assert figures["sentences_per_second"] == 200 and figures["sentences_per_second_by_round"] == [300, 100, 200]
    assert figures["seconds"] == pytest.approx(1 / 200) and figures["spread_seconds"] == [0.5, 2]
    assert combined["memory"] == {"peak_rss_mb": 95.0, "cuda_peak_mb": None}
    assert combined["load_seconds"] == 0.2 and combined["predicted_tags"] == [["O"]]
    assert combine_rounds(rounds[:1]) == rounds[0]


def test_rounds_measure_every_run_once_per_round_in_turn(tiny_teacher, student_dir, tmp_path, monkeypatch):
    sentences, _ = harness.load_dataset(str(tiny_teacher["data"])).load("test")
    calls = []

    def fake_worker(spec, timeout):
        calls.append(spec["runtime"])
        p50 = {"onnx": 1.0, "onnx-int8": 0.5}[spec["runtime"]] * len(calls)
        return _worker_result(p50, 100.0, 50.0, [["O"] * len(s.text) for s in sentences if s.text])

    monkeypatch.setattr(harness, "_run_worker", fake_worker)
    cfg = BenchmarkConfig(
        models=[("student", student_dir)],
        out=tmp_path,
        data=str(tiny_teacher["data"]),
        variants=["onnx", "onnx-int8"],
        batch_sizes=[16],
        rounds=3,
    )
    data = run_benchmark(cfg)
    assert calls == ["onnx", "onnx-int8"] * 3
    onnx, int8 = data["runs"]
    assert onnx["latency_ms"]["p50_by_round"] == [1.0, 3.0, 5.0] and onnx["latency_ms"]["p50"] == 3.0
    assert int8["latency_ms"]["p50_by_round"] == [1.0, 2.0, 3.0] and int8["rounds"] == 3
    assert "measured in 3 rounds" in (tmp_path / "report.md").read_text()


def test_a_run_past_the_timeout_is_reported_as_failed_and_the_others_still_measured(
    tiny_teacher, student_dir, tmp_path, monkeypatch
):
    real_worker = harness._run_worker

    def worker(spec, timeout):
        # The onnx run gets far less time than a Python process needs to start: the real worker is killed.
        return real_worker(spec, 0.05 if spec["runtime"] == "onnx" else timeout)

    monkeypatch.setattr(harness, "_run_worker", worker)
    cfg = BenchmarkConfig(
        models=[("student", student_dir)],
        out=tmp_path,
        data=str(tiny_teacher["data"]),
        variants=["torch", "onnx"],
        batch_sizes=[16],
        latency_sentences=5,
        warmup=1,
        throughput_repeats=1,
    )
    torch_run, onnx_run = run_benchmark(cfg)["runs"]
    assert torch_run["status"] == "ok" and torch_run["accuracy"]["overall"]["f1"] > 0
    assert onnx_run["status"] == "failed" and onnx_run["reason"] == "timed out after 0.05 s"
    text = (tmp_path / "report.md").read_text()
    assert "| student | onnx | cpu | failed: timed out after 0.05 s |" in text
    assert "throughput: one pass over the whole test set" in text


def _run(model, variant, f1, p50, kind="student", device="cpu", rss=100.0):
    return {
        "model": model,
        "variant": variant,
        "device": device,
        "kind": kind,
        "status": "ok",
        "accuracy": {"overall": {"f1": f1}},
        "latency_ms": {"p50": p50},
        "throughput": {"32": {"sentences_per_second": 1000 / p50}},
        "memory": {"peak_rss_mb": rss},
    }


def test_recommendation_is_the_fastest_within_the_allowed_drop():
    runs = [
        _run("teacher", "torch", 0.950, 12.0, kind="teacher", rss=900.0),
        _run("teacher", "bf16", 0.949, 6.0, kind="teacher", rss=900.0),
        _run("student", "torch", 0.945, 1.5),
        _run("student", "onnx", 0.945, 0.4, rss=90.0),
        _run("tiny", "onnx", 0.930, 0.2),  # faster, but 2 F1 points below the best
        {"model": "x", "variant": "torch", "device": "cuda", "kind": "student", "status": "unavailable"},
    ]
    rec = recommend(runs, max_f1_drop=1.0)
    assert (rec["model"], rec["variant"]) == ("student", "onnx")
    assert rec["speedup_vs_teacher"] == pytest.approx(30.0) and rec["memory_saving_vs_teacher"] == pytest.approx(10.0)
    assert rec["speedup_vs_fastest_teacher"] == pytest.approx(15.0) and rec["fastest_teacher"] == "teacher [bf16, cpu]"
    assert "15.0x faster than teacher [bf16, cpu], its fastest variant" in recommendation_line(rec)
    assert "and 10.0x less peak memory" in recommendation_line(rec)
    # The teacher's own int8 variant (a little more memory than float32): no "0.9x less".
    rec = recommend([runs[0], _run("teacher", "int8", 0.949, 5.0, kind="teacher", rss=950.0)], max_f1_drop=1.0)
    assert (rec["variant"], rec["speedup_vs_teacher"]) == ("int8", pytest.approx(2.4))
    assert "2.4x faster than teacher [torch, cpu] at batch 1 and about the same peak memory" in recommendation_line(rec)
    # Several teachers (one and an ensemble of it, say): the first given is the reference, and is named.
    ensemble = _run("ensemble", "torch", 0.955, 36.0, kind="teacher", rss=2000.0)
    rec = recommend([runs[0], ensemble], max_f1_drop=1.0)
    assert rec["model"] == "teacher" and rec["speedup_vs_teacher"] is None  # no speed-up over itself
    assert "faster" not in recommendation_line(rec)
    rec = recommend([ensemble, runs[0]], max_f1_drop=1.0)
    assert "3.0x faster than ensemble [torch, cpu] at batch 1" in recommendation_line(rec)
    rec = recommend([runs[0], _run("teacher", "int8", 0.949, 5.0, kind="teacher", rss=1800.0)], max_f1_drop=1.0)
    assert "and 2.0x the teacher's peak memory" in recommendation_line(rec)
    assert recommend(runs, max_f1_drop=3.0)["model"] == "tiny"
    assert recommend(runs, max_f1_drop=0.0)["model"] == "teacher"
    assert recommend([r for r in runs if r["kind"] != "teacher"], 1.0)["speedup_vs_teacher"] is None
    assert recommend([], 1.0) is None


@pytest.mark.parametrize("runtime", ["onnx", "onnx-int8"])
def test_onnx_deployment_process_never_imports_torch(student_dir, runtime):
    export_onnx(student_dir)
    texts = ["张三在北京工作。", "abc 123 😀 李四"]
    code = (
        "import json, sys\n"
        "from distill.cli import cli\n"
        f"cli.main(['predict', {str(student_dir)!r}, '--runtime', {runtime!r}, *{texts!r}], standalone_mode=False)\n"
        "heavy = [m for m in ('torch', 'transformers', 'seqeval', 'sklearn') if m in sys.modules]\n"
        "print(json.dumps(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *predictions, heavy = result.stdout.strip().splitlines()
    assert json.loads(heavy) == []
    lines = [json.loads(p) for p in predictions]
    assert [line["text"] for line in lines] == texts
    if runtime == "onnx":  # the float graph tags exactly as PyTorch does, and is as sure
        expected = load_model(student_dir).predict(texts)
        got = [line["entities"] for line in lines]
        confidences = [entity.pop("confidence") for row in got for entity in row]
        assert got == [[{k: v for k, v in e.as_dict().items() if k != "confidence"} for e in row] for row in expected]
        assert confidences == pytest.approx([e.confidence for row in expected for e in row], abs=1e-4)


@pytest.mark.parametrize(
    "files, limit",
    [
        ({"cpu.max": "200000 100000\n"}, 2),  # cgroup v2: docker --cpus 2
        ({"cpu.max": "150000 100000\n"}, 2),  # 1.5 cores: two workers, each often waiting
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_a_containers_cpu_limit_caps_the_onnx_workers(tmp_path, files, limit):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_limit(tmp_path) == limit
    assert usable_cores(tmp_path) == min(usable_cores(tmp_path / "none"), limit or 10**6)


def test_torch_threads_stay_within_a_containers_cpu_limit(monkeypatch):
    from distill import cpus
    from distill.training import use_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: 1)
        use_threads(0)  # torch's default, within the limit
        assert torch.get_num_threads() == 1
        use_threads(2)  # asked for: as asked
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: None)
        use_threads(0)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_onnx_student_tags_batches_on_threads_in_order(student_dir):
    export_onnx(student_dir)
    texts = [("张三在北京工作。" * (1 + i % 7))[: 3 + i % 40] + str(i) for i in range(300)]
    one_core = load_model(student_dir, runtime="onnx", threads=1)
    two_cores = load_model(student_dir, runtime="onnx", threads=2)
    assert (one_core.workers, two_cores.workers) == (1, 2)
    expected = [[e.as_dict() for e in one_core.predict([text])[0]] for text in texts]
    # as_dict: confidences to 4 significant digits (a batch's padding moves their last float bits)
    assert [[e.as_dict() for e in row] for row in one_core.predict(texts, batch_size=8)] == expected
    assert [[e.as_dict() for e in row] for row in two_cores.predict(texts, batch_size=8)] == expected


@pytest.mark.parametrize("max_chars", [2048, 1024])
def test_batches_in_flight_share_one_character_budget(max_chars):
    from distill.tagging import tag_in_batches

    texts = ["字" * 30] * 400

    def tag_ids(batch: list[str], padded: list[int]) -> list[list[int]]:
        padded.append(len(batch) * max(map(len, batch)))  # padded characters of the batch
        return [[0] * len(text) for text in batch]

    for workers in (1, 2):
        padded: list[int] = []
        tagger = functools.partial(tag_ids, padded=padded)
        assert tag_in_batches(tagger, texts, 256, workers, max_chars) == [[0] * 30] * 400
        assert max(padded) <= max_chars // workers
        assert max(padded) > max_chars // workers - 30 * 2  # batches fill their share


def test_onnx_runtime_predicts_and_evaluates_under_its_own_character_budget(student_dir):
    """The torch-free runtime keeps fewer padded characters in flight than the torch ones, and
    evaluate batches as predict and the benchmark do (an INT8 graph quantises each batch whole)."""
    from distill.data import Sentence
    from distill.student.onnx_runtime import OnnxStudent
    from distill.tagging import MAX_BATCH_CHARS

    model = load_model(student_dir, runtime="onnx", threads=2)
    assert model.max_batch_chars == OnnxStudent.max_batch_chars < MAX_BATCH_CHARS
    padded: list[int] = []  # padded characters of each batch tagged

    def recording(tagger):
        def tag(texts: list[str]) -> list:
            padded.append(len(texts) * max(map(len, texts)))
            return tagger(texts)

        return tag

    tagger, crf = model.scored
    model.scored, model.tag_ids = (recording(tagger), crf), recording(model.tag_ids)
    share = model.max_batch_chars // model.workers
    model.predict(["张三在北京工作。" * 4] * 300, batch_size=256)
    assert share - 64 < max(padded) <= share
    padded.clear()
    sentence = Sentence("张三在北京工作。", ["B-PER", "E-PER", "O", "B-LOC", "E-LOC", "O", "O", "O"])
    model.evaluate([sentence] * 300, batch_size=256)
    assert share - 64 < max(padded) <= share


def test_predict_keeps_emissions_only_while_their_batch_is_scored():
    """Confidences are computed batch by batch, so a long input never holds all its emissions."""
    import weakref

    from distill.confidence import CrfScores
    from distill.tagging import predict_entities

    labels = ["O", "S-PER"]
    alive: set[int] = set()
    most_alive = 0

    def tag_scores(batch: list[str]) -> list[tuple[list[int], np.ndarray]]:
        nonlocal most_alive
        out = []
        for text in batch:
            emissions = np.tile(np.array([0.0, 1.0], dtype=np.float32), (len(text), 1))  # [L, K]: S-PER wins
            alive.add(id(emissions))
            weakref.finalize(emissions, alive.discard, id(emissions))
            out.append(([1] * len(text), emissions))
        most_alive = max(most_alive, len(alive))
        return out

    crf = CrfScores(np.zeros(2), np.zeros((2, 2)), np.zeros(2))
    texts = ["张三" * 5] * 300
    entities = predict_entities(texts, None, labels, batch_size=16, scored=(tag_scores, crf))
    assert [len(found) for found in entities] == [10] * 300
    assert all(0 < e.confidence < 1 for found in entities for e in found)
    assert most_alive <= 32  # this batch, and at most the one before it not yet collected


def test_stale_or_missing_onnx_export_is_refused(student_dir, tmp_path):
    from distill.errors import DistillError

    with pytest.raises(DistillError, match="no ONNX export"):
        load_model(student_dir, runtime="onnx", onnx_dir=tmp_path)
    export_onnx(student_dir, tmp_path)
    meta = json.loads((tmp_path / "onnx.json").read_text())
    (tmp_path / "onnx.json").write_text(json.dumps(meta | {"weights_sha256": "0" * 64}))
    with pytest.raises(DistillError, match="other weights"):
        load_model(student_dir, runtime="onnx", onnx_dir=tmp_path)
    export_onnx(student_dir, tmp_path)
    (tmp_path / "model-int8.onnx").write_bytes(b"not the exported graph")
    with pytest.raises(DistillError, match="does not match the checksum"):
        load_model(student_dir, runtime="onnx-int8", onnx_dir=tmp_path)
    meta = json.loads((tmp_path / "onnx.json").read_text())
    del meta["int8"]
    (tmp_path / "onnx.json").write_text(json.dumps(meta))
    with pytest.raises(DistillError, match="no INT8 export"):
        load_model(student_dir, runtime="onnx-int8", onnx_dir=tmp_path)


def test_machine_line_names_the_gpu_or_says_cpu_only() -> None:
    base = {"cpu": "Some CPU", "cores": 2}
    assert machine_line(base) == "Some CPU, 2 cores"  # torch not imported: nothing said of a GPU
    assert machine_line(base | {"cuda": False}) == "Some CPU, 2 cores, CPU only"
    assert machine_line(base | {"cuda": True, "gpu": "NVIDIA H200"}) == "Some CPU, 2 cores, NVIDIA H200"


def test_benchmark_exits_1_when_no_run_completes(student_dir, tiny_teacher, tmp_path):
    from click.testing import CliRunner

    from distill.cli import cli

    options = ["--model", f"s={student_dir}", "--data", str(tiny_teacher["data"]), "--variants", "torch"]
    result = CliRunner().invoke(cli, ["benchmark", *options, "--timeout", "0.01", "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "no run completed" in result.output
