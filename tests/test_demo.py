"""`distill demo --quick`: the whole pipeline on the embedded default data and the default backbone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from distill.student.config import StudentTrainConfig


def test_quick_demo_runs_the_whole_pipeline(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "distill", "demo", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for n in range(1, 7):
        assert f"[{n}/6]" in result.stdout
    assert "the first 150 train / 60 dev / 60 test sentences" in result.stdout
    assert "Deploy **" in result.stdout and "demo finished in" in result.stdout
    report = json.loads((out / "report" / "report.json").read_text())
    ok = {(r["model"], r["variant"]) for r in report["runs"] if r["status"] == "ok"}
    assert ("teacher", "torch") in ok and ("student-distilled", "onnx") in ok and ("student-hard", "torch") in ok
    assert (out / "report" / "pareto.png").exists() and (out / "report" / "report.md").exists()
    distilled = json.loads((out / "student-distilled" / "config.json").read_text())
    # The demo trains the user's own command: alpha 0.5, T 4, and student-train's defaults for the rest.
    defaults = StudentTrainConfig(out=out / "unused")
    assert distilled["distillation"]["alpha"] == 0.5 and distilled["distillation"]["temperature"] == 4.0
    assert distilled["distillation"]["unlabeled_ratio"] == defaults.unlabeled_ratio
    assert distilled["training"]["keep"] == defaults.keep and distilled["training"]["ema"] == defaults.ema
    hard = json.loads((out / "student-hard" / "config.json").read_text())
    assert hard["training"]["lr_decay"] == "none" and hard["training"]["keep"] == "best"
