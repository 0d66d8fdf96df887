"""``distill export``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True, help="The export format."
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Where to write. [default: MODEL_DIR]")
def export(model_dir: Path, fmt: str, out: Path | None) -> None:
    """Export a student's network to ONNX (decoding stays outside, in numpy).

    Writes model.onnx, model-int8.onnx (onnxruntime's dynamic INT8 quantisation of it) and
    onnx.json; the float export is checked against the PyTorch network before it is kept. Serve it
    without torch: `distill predict MODEL_DIR --runtime onnx ...` (or --runtime onnx-int8).
    """
    from distill.artifacts import read_config
    from distill.errors import DistillError

    if read_config(model_dir)["kind"] != "student":
        raise DistillError(f"{model_dir} is not a student: ONNX export is for students (the deployment model)")
    from distill.student.export import export_onnx

    path = export_onnx(model_dir, out)
    from distill.student.onnx_runtime import ONNX_INT8_FILE

    int8 = path.parent / ONNX_INT8_FILE
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {int8} ({int8.stat().st_size / 1e6:.1f} MB)")
