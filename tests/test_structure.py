"""The shape of the package: import layers, one installed top-level name, a torch-free evaluate."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.tiny import source_copy

ROOT = Path(__file__).resolve().parents[1]

# Where each folder of the repository installs (setup.cfg's package_dir).
PACKAGES = {"distill": "distill", "data": "distill.data", "teacher": "distill.teacher", "student": "distill.student"}

# The layers, bottom to top. A module may import its own layer and those below it; the two
# model packages sit side by side and never import each other.
CORE = {
    "distill",  # the package itself holds only its version
    "distill.artifacts",
    "distill.cache",
    "distill.confidence",
    "distill.checkpoint",
    "distill.cpus",
    "distill.crf",
    "distill.environment",
    "distill.errors",
    "distill.evaluation",
    "distill.loop",
    "distill.metrics",
    "distill.settings",
    "distill.tagging",
    "distill.training",
    "distill.viterbi",
}


def _layer(module: str) -> str:
    if module == "distill.data" or module.startswith("distill.data."):
        return "data"
    for models in ("distill.teacher", "distill.student"):
        if module == models or module.startswith(models + "."):
            return models
    if module in CORE:
        return "core"
    return "application"


ALLOWED = {
    "data": {"data"},
    "core": {"data", "core"},
    "distill.teacher": {"data", "core", "distill.teacher"},
    "distill.student": {"data", "core", "distill.student"},
    "application": {"data", "core", "distill.teacher", "distill.student", "application"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def _imports(module: str, path: Path) -> set[str]:
    """Project modules ``module`` imports, anywhere in the file (imports inside functions too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from . import viterbi`
    return names


def test_every_import_respects_the_layers():
    modules = _modules()
    violations = []
    for module, path in sorted(modules.items()):
        for imported in sorted(_imports(module, path)):
            top = imported.split(".")[0]
            if top in ("data", "teacher", "student"):
                violations.append(f"{module} imports {imported}: the installed name is distill.{imported}")
            elif imported in modules and _layer(imported) not in ALLOWED[_layer(module)]:
                violations.append(f"{module} ({_layer(module)}) imports {imported} ({_layer(imported)})")
    assert violations == []


def test_the_layer_check_sees_a_violation(tmp_path):
    source = tmp_path / "crf.py"
    source.write_text("from .cli import main\nfrom distill.teacher.model import Teacher\n", encoding="utf-8")
    imported = _imports("distill.crf", source)
    assert {"distill.cli", "distill.teacher.model"} <= imported
    assert _layer("distill.teacher.model") not in ALLOWED[_layer("distill.crf")]


def test_the_wheel_installs_one_top_level_package_that_runs_beside_a_users_data_package(tmp_path):
    source = source_copy(tmp_path / "source")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", tmp_path, source],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("distill-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"distill"}
    assert {"distill/data/column.py", "distill/teacher/model.py", "distill/student/model.py"} <= set(names)

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", site, wheel],
        check=True,
        capture_output=True,
    )
    user_project = tmp_path / "project"
    (user_project / "data").mkdir(parents=True)
    (user_project / "data" / "__init__.py").write_text("raise ImportError('the user project data package')\n")

    def beside_user_data(*args: str) -> subprocess.CompletedProcess:
        env = {"PYTHONPATH": str(site)}
        return subprocess.run(
            [sys.executable, *args], cwd=user_project, env=env, capture_output=True, text=True, check=False
        )

    code = "import distill, distill.data; print(distill.__file__); print(distill.data.__file__)"
    result = beside_user_data("-c", code)
    assert result.returncode == 0, result.stderr
    assert all(line.startswith(str(site)) for line in result.stdout.splitlines())
    help_run = beside_user_data("-m", "distill", "--help")
    assert help_run.returncode == 0, help_run.stderr
    assert "student-train" in help_run.stdout


BLOCK_TORCH = """
import sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "seqeval", "sklearn"):
            raise ImportError("blocked in this test: " + name)
sys.meta_path.insert(0, Blocked())
"""


def test_onnx_model_evaluates_with_torch_blocked(tiny_teacher, tmp_path):
    from distill.student.config import StudentTrainConfig
    from distill.student.export import export_onnx
    from distill.student.train import train_student

    student = tmp_path / "student"
    train_student(StudentTrainConfig(out=student, cache=tiny_teacher["cache"], epochs=1, hidden=8, embedding_dim=8))
    export_onnx(student)
    code = BLOCK_TORCH + (
        "import json\n"
        "from distill.api import load_model\n"
        "from distill.data import load_dataset\n"
        f"sentences, _ = load_dataset({str(tiny_teacher['data'])!r}).load('test')\n"
        f"scores = load_model({str(student)!r}, runtime='onnx').evaluate(sentences)\n"
        "print(json.dumps(scores.overall.__dict__))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert 0 <= json.loads(result.stdout.splitlines()[-1])["f1"] <= 1


@pytest.mark.parametrize("folder", ["data", "teacher", "student"])
def test_repository_folders_are_packages_of_distill(folder):
    import importlib

    module = importlib.import_module(f"distill.{folder}")
    assert Path(module.__file__).parent == ROOT / folder
