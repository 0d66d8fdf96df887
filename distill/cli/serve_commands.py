"""``distill serve``."""

from __future__ import annotations

import click

from distill.serve import ServeConfig
from distill.settings import command_options


@click.command("serve")
@command_options(ServeConfig)
def serve(settings: ServeConfig) -> None:
    """Serve MODEL over HTTP: POST /predict, GET /health, GET /metadata.

    \b
    POST /predict  {"texts": ["张三在北京工作。", ...]}
      -> {"results": [{"text": ..., "entities": [{"type", "text", "start", "end", "confidence"}]}]}
    Requests that arrive within --batch-window-ms of each other are tagged as one batch. A body
    over --max-body-bytes, more than --max-texts texts or a text over --max-text-chars gets 413;
    malformed JSON or a wrong shape 400. SIGTERM (or Ctrl-C) lets in-flight requests finish, then
    stops. Binds to 127.0.0.1 unless --host says otherwise. A student exported with
    `distill export` serves on onnxruntime, with no torch in the process.

    \b
    Example:
      distill export runs/resume-student --format onnx
      distill serve runs/resume-student --port 8080 &
      curl -s localhost:8080/predict -d '{"texts": ["张三，男，现任北京大学教授。"]}'
    """
    from distill.serve import serve as run

    run(settings)
