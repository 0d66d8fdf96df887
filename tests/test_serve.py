"""distill serve: status codes, micro-batching, confidences, and SIGTERM with a request in flight."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from distill.api import load_model
from distill.serve import MicroBatcher, ServeConfig, create_app
from distill.student.config import StudentTrainConfig
from distill.student.export import export_onnx
from distill.student.train import train_student
from tests.tiny import free_port, started_server

TEXTS = ["张三在北京工作。", "李四是公司的人"]


@pytest.fixture(scope="module")
def served_student(tiny_teacher, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serve") / "student"
    train_student(StudentTrainConfig(out=out, cache=tiny_teacher["cache"], epochs=4, hidden=8, embedding_dim=16))
    export_onnx(out)
    return out


def _client(student: Path, **settings) -> TestClient:
    cfg = ServeConfig(model=student, **settings)
    return TestClient(create_app(load_model(student, runtime="onnx", threads=1), cfg))


def test_predict_answers_what_the_api_predicts_with_confidences(served_student):
    expected = load_model(served_student, runtime="onnx", threads=1).predict(TEXTS)
    with _client(served_student) as client:
        response = client.post("/predict", json={"texts": TEXTS})
        assert response.status_code == 200
        results = response.json()["results"]
        assert [r["text"] for r in results] == TEXTS
        assert [r["entities"] for r in results] == [[e.as_dict() for e in row] for row in expected]
        assert all(0 < e["confidence"] <= 1 for r in results for e in r["entities"])
        assert client.post("/predict", json={"texts": []}).json() == {"results": []}
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["requests"] == 1
        metadata = client.get("/metadata").json()
        assert metadata["runtime"] == "onnx" and metadata["device"] == "cpu" and metadata["kind"] == "student"
        assert len(metadata["fingerprint"]) == 16
        assert "O" in metadata["labels"] and metadata["version"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not JSON"),
        (b'{"texts": "one string"}', 400, "a list of strings"),
        (b'{"texts": [1, 2]}', 400, "a list of strings"),
        (b"[]", 400, "a list of strings"),
        (json.dumps({"texts": ["x"] * 5}).encode(), 413, "5 texts; at most 4"),
        (json.dumps({"texts": ["字" * 30]}).encode(), 413, "a text of 30 characters; at most 20"),
        (json.dumps({"texts": ["x" * 250]}).encode(), 413, "at most 200"),
        (b"[" * 100_000 + b"]" * 100_000, 413, "at most 200"),
    ],
)
def test_bad_requests_get_their_status_and_a_message(served_student, body, status, message):
    with _client(served_student, max_texts=4, max_text_chars=20, max_body_bytes=200) as client:
        response = client.post("/predict", content=body)
        assert response.status_code == status and message in response.json()["error"]
        assert client.get("/health").json()["status"] == "ok"


def test_nested_json_within_the_body_limit_is_a_400_not_a_crash(served_student):
    with _client(served_student) as client:
        response = client.post("/predict", content=b"[" * 50_000 + b"]" * 50_000)
        assert response.status_code == 400


def test_concurrent_requests_are_tagged_as_one_batch(served_student):
    with _client(served_student, batch_window_ms=500) as client:
        answers = []
        threads = [
            threading.Thread(target=lambda t=t: answers.append(client.post("/predict", json={"texts": [t]})))
            for t in TEXTS
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [a.status_code for a in answers] == [200, 200]
        health = client.get("/health").json()
        assert health["requests"] == 2 and health["batches"] == 1 and health["largest_batch"] == 2
    with _client(served_student, batch_window_ms=0) as client:  # no window: each request alone
        client.post("/predict", json={"texts": [TEXTS[0]]})
        client.post("/predict", json={"texts": [TEXTS[1]]})
        assert client.get("/health").json()["batches"] == 2


def test_a_request_cancelled_while_it_waits_leaves_the_batcher_serving():
    async def scenario() -> None:
        batcher = MicroBatcher(lambda texts: [[t] for t in texts], window=0.05, max_batch=32)
        batching = asyncio.create_task(batcher.run())
        gone = asyncio.create_task(batcher.submit(["a"]))
        kept = asyncio.create_task(batcher.submit(["b"]))
        await asyncio.sleep(0)  # both queued, in one window
        gone.cancel()  # its client went away
        assert await asyncio.wait_for(kept, 5) == [["b"]]
        assert await asyncio.wait_for(batcher.submit(["c"]), 5) == [["c"]]
        batching.cancel()

    asyncio.run(scenario())


def test_a_stopped_batcher_is_a_503_not_a_request_that_never_ends(served_student, monkeypatch):
    async def broken(self) -> None:
        raise RuntimeError("broken")

    monkeypatch.setattr(MicroBatcher, "run", broken)
    with _client(served_student) as client:
        health = client.get("/health")
        assert health.status_code == 503 and "RuntimeError('broken')" in health.json()["error"]
        answer = client.post("/predict", json={"texts": [TEXTS[0]]})
        assert answer.status_code == 503 and health.json()["status"] == "error"


def test_sigterm_lets_the_request_in_flight_finish(served_student):
    port = free_port()
    command = [sys.executable, "-m", "distill", "serve", served_student, "--port", port, "--batch-window-ms", 1500]
    server = started_server(command, port)
    try:
        answer = {}

        def ask() -> None:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/predict", data=json.dumps({"texts": TEXTS}).encode(), method="POST"
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                answer["status"], answer["body"] = response.status, json.loads(response.read())

        client = threading.Thread(target=ask)
        client.start()
        time.sleep(0.5)  # the request now waits in its 1.5 s batch window
        server.send_signal(signal.SIGTERM)
        client.join(timeout=30)
        assert answer.get("status") == 200 and len(answer["body"]["results"]) == 2
        # uvicorn re-raises the signal once it has shut down gracefully, as a supervisor expects
        assert server.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()


def test_port_0_serves_on_the_port_it_announces_and_a_port_in_use_is_refused(served_student):
    command = [sys.executable, "-m", "distill", "serve", str(served_student), "--port", "0"]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        announced = server.stderr.readline()  # written once the model is loaded and the port bound
        port = int(re.fullmatch(r"serving .* \(onnx\) on http://127\.0\.0\.1:(\d+)\n", announced).group(1))
        assert port > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as response:
            assert json.loads(response.read())["status"] == "ok"
        second = subprocess.run([*command[:-1], str(port)], capture_output=True, text=True, timeout=60, check=False)
        assert second.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in second.stderr
        assert "Traceback" not in second.stderr and "serving" not in second.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_a_lone_surrogate_is_an_unknown_character_not_an_error(served_student, runtime):
    texts = ["张三\ud800在北京", "李四"]
    model = load_model(served_student, runtime=runtime, threads=1)
    assert len(model.predict(texts)) == 2
    with _client(served_student) as client:
        response = client.post("/predict", content=json.dumps({"texts": texts}).encode())
        assert response.status_code == 200 and response.json()["results"][0]["text"] == texts[0]


def test_predict_on_an_empty_input_file_answers_nothing(served_student, tmp_path):
    from click.testing import CliRunner

    from distill.cli import cli

    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    result = CliRunner().invoke(cli, ["predict", str(served_student), "--input", str(tmp_path / "empty.txt")])
    assert result.exit_code == 0 and result.output == ""


def test_predict_threads_sets_the_torch_runtimes_threads(served_student):
    import subprocess

    code = (
        "import torch\n"
        "from distill.cli import cli\n"
        f"cli.main(['predict', {str(served_student)!r}, '--threads', '1', '张三'], standalone_mode=False)\n"
        "print(torch.get_num_threads())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "1"
