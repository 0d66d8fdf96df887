"""The runtime install (`pip install distill`, no extras): predicts, evaluates and serves an exported
student in a fresh virtual environment that has no torch, and says what a training command needs;
under this Python and under the oldest that setup.cfg allows (3.10), where one is installed."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from distill.api import load_model
from distill.data import load_dataset
from distill.student.config import StudentTrainConfig
from distill.student.export import export_onnx
from distill.student.train import train_student
from tests.tiny import free_port, oldest_python, source_copy, started_server

OLDEST = oldest_python()


@pytest.mark.parametrize(
    "interpreter",
    [
        sys.executable,
        pytest.param(OLDEST, marks=pytest.mark.skipif(OLDEST is None, reason="no Python 3.10 interpreter here")),
    ],
    ids=["this-python", "python3.10"],
)
def test_a_fresh_runtime_install_predicts_and_serves_without_torch(interpreter, tiny_teacher, tmp_path):
    student = tmp_path / "student"
    recipe = {"epochs": 40, "hidden": 16, "embedding_dim": 16, "lr": 0.01}  # enough to tag the test split right
    train_student(StudentTrainConfig(out=student, cache=tiny_teacher["cache"], **recipe))
    export_onnx(student)
    venv = tmp_path / "venv"
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True)
    python, distill = venv / "bin" / "python", venv / "bin" / "distill"
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(source_copy(tmp_path / "source"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    assert subprocess.run([python, "-c", "import torch"], capture_output=True, check=False).returncode != 0

    predicted = subprocess.run(
        [distill, "predict", student, "--runtime", "onnx-int8", "张三在北京工作。"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert predicted.returncode == 0, predicted.stderr
    line = json.loads(predicted.stdout)
    assert line["text"] == "张三在北京工作。" and all("confidence" in e for e in line["entities"])

    scored = subprocess.run(
        [distill, "evaluate", student, "--runtime", "onnx", "--data", tiny_teacher["data"], "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert scored.returncode == 0, scored.stderr
    sentences, _ = load_dataset(tiny_teacher["data"]).load("test")
    in_torch = load_model(student).evaluate(sentences).overall.f1
    assert in_torch > 0.5 and json.loads(scored.stdout)["overall"]["f1"] == pytest.approx(in_torch)

    listed = subprocess.run([distill, "--help"], capture_output=True, text=True, check=False)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr[-2000:]
    assert all(name in listed.stdout for name in ("teacher-train", "teacher-cache", "student-train", "serve"))
    for command in (
        ["student-train", "--out", tmp_path / "s"],  # imports torch as it runs
        ["bigram-vectors", "--out", tmp_path / "b", "--data", "d"],
        ["teacher-cache", tmp_path / "t", "--out", tmp_path / "c"],  # its module imports transformers
        ["teacher-train", "--help"],
    ):
        training = subprocess.run([distill, *command], capture_output=True, text=True, check=False)
        said = training.stdout + training.stderr
        assert f"distill {command[0]} needs the training stack" in said and 'pip install "distill[train]"' in said
        assert training.returncode == (0 if "--help" in command else 1) and "Traceback" not in said

    port = free_port()
    settings = tmp_path / "serve.toml"  # --config too: its TOML parser differs before Python 3.11
    settings.write_text(f"port = {port}\nbatch_window_ms = 5\n", encoding="utf-8")
    server = started_server([distill, "serve", student, "--config", settings], port)
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict", data=json.dumps({"texts": ["李四在上海"]}).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["results"][0]["text"] == "李四在上海"
        server.terminate()
        assert server.wait(timeout=60) in (0, -15)
    finally:
        if server.poll() is None:
            server.kill()
