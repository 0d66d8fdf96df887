"""The deployment report: report.json (everything), report.md (the table a person reads), pareto.png.

``render`` rebuilds report.md and pareto.png from report.json alone, so a report can be
re-rendered (or merged) without measuring again.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from distill.artifacts import atomic_write, atomic_write_json

REPORT = "report.json"
"""The report's file in its directory: every figure, from which report.md and the plots are drawn."""


def _ok(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r.get("status") == "ok"]


def _label(run: dict) -> str:
    return f"{run['model']} [{run['variant']}, {run['device']}]"


def recommend(runs: list[dict], max_f1_drop: float) -> dict | None:
    """The fastest run (batch-1 p50 latency) within ``max_f1_drop`` F1 points of the most accurate.

    Speed-up and memory saving are against the teacher's PyTorch (float32) run on the same device,
    when the report has one (the first teacher given, where there are several: a single teacher
    and an ensemble, say); the batch-1 speed-up is also given against the teacher's fastest
    variant there (bf16 or int8 may be faster than float32), so neither figure flatters.
    """
    ok = _ok(runs)
    if not ok:
        return None
    best = max(ok, key=lambda r: r["accuracy"]["overall"]["f1"])
    floor = best["accuracy"]["overall"]["f1"] - max_f1_drop / 100
    eligible = [r for r in ok if r["accuracy"]["overall"]["f1"] >= floor - 1e-12]
    chosen = min(eligible, key=lambda r: r["latency_ms"]["p50"])
    teacher = next(
        (r for r in ok if r["kind"] == "teacher" and r["variant"] == "torch" and r["device"] == chosen["device"]), None
    )
    result = {
        "model": chosen["model"],
        "variant": chosen["variant"],
        "device": chosen["device"],
        "label": _label(chosen),
        "f1": chosen["accuracy"]["overall"]["f1"],
        "best_f1": best["accuracy"]["overall"]["f1"],
        "best_label": _label(best),
        "max_f1_drop": max_f1_drop,
        "p50_ms": chosen["latency_ms"]["p50"],
        "speedup_vs_teacher": None,
        "memory_saving_vs_teacher": None,
        "speedup_vs_fastest_teacher": None,
    }
    teachers = [r for r in ok if r["kind"] == "teacher" and r["device"] == chosen["device"]]
    if teachers and chosen["kind"] != "teacher":
        fastest = min(teachers, key=lambda r: r["latency_ms"]["p50"])
        result["speedup_vs_fastest_teacher"] = fastest["latency_ms"]["p50"] / chosen["latency_ms"]["p50"]
        result["fastest_teacher"] = _label(fastest)
    if teacher is not None and teacher is not chosen:
        result["teacher"] = _label(teacher)
        result["speedup_vs_teacher"] = teacher["latency_ms"]["p50"] / chosen["latency_ms"]["p50"]
        result["throughput_ratio_vs_teacher"] = {
            size: chosen["throughput"][size]["sentences_per_second"]
            / teacher["throughput"][size]["sentences_per_second"]
            for size in chosen["throughput"]
            if size in teacher["throughput"]
        }
        result["memory_saving_vs_teacher"] = teacher["memory"]["peak_rss_mb"] / chosen["memory"]["peak_rss_mb"]
    return result


def recommendation_line(rec: dict | None) -> str:
    if rec is None:
        return "No recommendation: no run completed."
    line = (
        f"Deploy **{rec['label']}**: F1 {rec['f1'] * 100:.2f} (best {rec['best_f1'] * 100:.2f}, {rec['best_label']}; "
        f"allowed drop {rec['max_f1_drop']:.2f}), batch-1 p50 {rec['p50_ms']:.2f} ms"
    )
    if rec.get("speedup_vs_teacher"):
        line += (
            f", {rec['speedup_vs_teacher']:.1f}x faster than {rec.get('teacher', 'the teacher')} at batch 1"
            f" and {_memory_phrase(rec['memory_saving_vs_teacher'])}"
        )
    if rec.get("fastest_teacher"):
        line += f" ({rec['speedup_vs_fastest_teacher']:.1f}x faster than {rec['fastest_teacher']}, its fastest variant)"
    return line + "."


def serving_commands(report: dict) -> list[str]:
    """The commands that serve the recommended run as it was measured: its model directory, runtime
    and device (a student on an onnx runtime is exported first); none without a recommendation."""
    rec = report.get("recommendation")
    run = next((r for r in _ok(report["runs"]) if rec and _label(r) == rec["label"]), None)
    if run is None or not run.get("path"):
        return []
    path = shlex.quote(run["path"])
    export = [f"distill export {path} --format onnx"] if run["variant"].startswith("onnx") else []
    device = "" if run["device"] == "cpu" else f" --device {run['device']}"
    return [*export, f"distill serve {path} --runtime {run['variant']}{device} --port 8080"]


def _memory_phrase(saving: float) -> str:
    """The teacher's peak memory over the chosen run's, in words: "4.0x less" where the choice saves
    memory, "about the same" within 10%, else how many times the teacher's it takes."""
    if saving >= 1.1:
        return f"{saving:.1f}x less peak memory"
    if saving > 1 / 1.1:
        return "about the same peak memory"
    return f"{1 / saving:.1f}x the teacher's peak memory"


def _fmt(value: float | None, spec: str = ".2f", scale: float = 1.0) -> str:
    return "n/a" if value is None else format(value * scale, spec)


def markdown(report: dict) -> str:
    env = report["environment"]
    lines = [
        "# Deployment report",
        "",
        recommendation_line(report.get("recommendation")),
        "",
    ]
    if commands := serving_commands(report):
        how = (
            "Export it where it was trained, then serve it: serving needs only the runtime install, no torch"
            if report["recommendation"]["variant"].startswith("onnx")
            else "Serve it with the training stack installed"
        )
        lines += [f"{how} (`distill serve --help` for its limits):", "", "```bash", *commands, "```", ""]
    lines += [
        f"Data: `{report['data']['path']}` / {report['data']['split']}: {report['data']['sentences']} sentences, "
        f"{report['data']['characters']} characters.  ",
        f"Machine: {env.get('cpu')}, {env.get('cores')} cores; torch {env['versions'].get('torch')}, "
        f"onnxruntime {env['versions'].get('onnxruntime')}; "
        f"CUDA: {env.get('gpu') if env.get('cuda') else 'not available'}.  ",
        f"Threads per worker: {report['settings'].get('threads') or 'library default'}. Created {report['created']}.  ",
    ]
    if report.get("command"):
        lines.append(f"Command: `{report['command']}`")
    sizes = report["settings"]["batch_sizes"]
    rounds = report["settings"]["rounds"]
    repeats = report["settings"]["throughput_repeats"]
    passes = "one pass" if repeats == 1 else f"the median of {repeats} passes"
    rounds_note = (
        f"Every row was measured in {rounds} rounds (all rows once per round, in turn, each time by a fresh "
        "process): latency, throughput and load time are medians over rounds, peak RSS the largest. "
        if rounds > 1
        else ""
    )
    header = (
        ["model", "variant", "device", "F1", "P", "R", "p50 ms", "p95 ms", "p99 ms"]
        + [f"sent/s @{b}" for b in sizes]
        + [f"chars/s @{sizes[-1]}", "peak RSS MB", "CUDA MB", "params", "disk MB", "load s", "agrees", "ECE"]
    )
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run in report["runs"]:
        if run["status"] != "ok":
            lines.append(
                f"| {run['model']} | {run['variant']} | {run['device']} | {run['status']}: {run.get('reason', '')} |"
            )
            continue
        o = run["accuracy"]["overall"]
        lat = run["latency_ms"]
        tp = run["throughput"]
        agree = run.get("agreement", {}).get("sentences")
        disk = run["size"]["bytes_on_disk"]
        cells = [
            run["model"],
            run["variant"],
            run["device"],
            _fmt(o["f1"], ".2f", 100),
            _fmt(o["precision"], ".2f", 100),
            _fmt(o["recall"], ".2f", 100),
            _fmt(lat["p50"]),
            _fmt(lat["p95"]),
            _fmt(lat["p99"]),
            *(_fmt(tp[str(b)]["sentences_per_second"], ".0f") for b in sizes),
            _fmt(tp[str(sizes[-1])]["chars_per_second"], ".0f"),
            _fmt(run["memory"]["peak_rss_mb"], ".0f"),
            _fmt(run["memory"]["cuda_peak_mb"], ".0f"),
            f"{run['size']['parameters'] / 1e6:.2f}M",
            _fmt(disk / 1e6 if disk else None, ".1f"),
            _fmt(run["load_seconds"]),
            _fmt(agree, ".1%", 1),
            _fmt((run.get("calibration") or {}).get("ece"), ".3f"),
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += [
        "",
        "Latency: the whole predict path (text in, entities out) at batch 1, "
        f"{report['settings']['latency_sentences']} calls over the test sentences in a fixed shuffled order "
        "(cycled when there are fewer), after a warm-up; "
        f"throughput: {passes} over the whole test set. " + rounds_note + "Peak RSS: the worker process that "
        "loaded the model and ran the test set (a fresh process per row). 'agrees': sentences tagged exactly as "
        "by the same model in PyTorch. int8 is quantised at load time, so it has no size on disk. "
        "ECE: the expected calibration error of entity confidences on the test set (10 equal bins; an entity is "
        "right when its type and span match a gold entity), 0 where a confidence is as often right as it says.",
        "",
        "![F1 against batch-1 latency](pareto.png)",
        "",
        "![Entity confidence against how often such entities are right](reliability.png)",
        "",
        "Per-type F1:",
        "",
    ]
    types = sorted({t for r in _ok(report["runs"]) for t in r["accuracy"]["per_type"]})
    lines += ["| run | " + " | ".join(types) + " |", "|" + "---|" * (len(types) + 1)]
    for run in _ok(report["runs"]):
        per = run["accuracy"]["per_type"]
        lines.append(
            f"| {_label(run)} | " + " | ".join(_fmt(per.get(t, {}).get("f1"), ".2f", 100) for t in types) + " |"
        )
    return "\n".join(lines) + "\n"


VARIANT_MARKERS = {"torch": "o", "int8": "v", "bf16": "^", "onnx": "D", "onnx-int8": "*"}


def pareto_png(report: dict, path: Path) -> None:
    """F1 against batch-1 latency: a colour per model, a marker per variant (hollow on CUDA), and
    names written beside the points of the front only (the fastest run at each level of F1), so
    that a crowded plot stays readable; the legend names every model and variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    from matplotlib.lines import Line2D

    ok = sorted(_ok(report["runs"]), key=lambda r: r["latency_ms"]["p50"])
    models = list(dict.fromkeys(run["model"] for run in ok))
    colours = {model: plt.get_cmap("tab10")(i % 10) for i, model in enumerate(models)}
    variants = list(dict.fromkeys(run["variant"] for run in ok))

    def point(run: dict) -> tuple[float, float]:
        return run["latency_ms"]["p50"], run["accuracy"]["overall"]["f1"] * 100

    fig, ax = plt.subplots(figsize=(10, 5.5))
    for run in ok:
        colour = colours[run["model"]]
        hollow = run["device"].startswith("cuda")
        ax.scatter(
            *point(run),
            marker=VARIANT_MARKERS.get(run["variant"], "o"),
            s=60 if run["variant"] == "onnx-int8" else 40,
            facecolors="none" if hollow else [colour],
            edgecolors=[colour],
        )
    front = []
    for run in ok:
        if not front or point(run)[1] > point(front[-1])[1]:
            front.append(run)
    if len(front) > 1:
        ax.plot(*zip(*(point(r) for r in front)), "k--", lw=0.8)
    for run in front:
        # Below each point, clear of the front's line (it rises to the right); the slowest point's
        # label runs leftwards, inside the axes.
        last = run is front[-1] and len(front) > 1
        ax.annotate(
            _label(run),
            point(run),
            textcoords="offset points",
            xytext=(-6 if last else 6, -12),
            ha="right" if last else "left",
            fontsize=7,
        )
    handles = [Line2D([], [], marker="s", ls="", color=colours[m], label=m) for m in models]
    handles += [Line2D([], [], marker=VARIANT_MARKERS.get(v, "o"), ls="", color="0.4", label=v) for v in variants]
    if any(run["device"].startswith("cuda") for run in ok):
        handles.append(Line2D([], [], marker="o", ls="", markerfacecolor="none", color="0.4", label="on CUDA"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("batch-1 latency, p50 (ms, log scale)")
    ax.set_ylabel("entity F1 (%)")
    ax.set_title(f"F1 against batch-1 latency: {Path(report['data']['path']).name} / {report['data']['split']}")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def reliability_png(report: dict, path: Path) -> None:
    """Accuracy against mean confidence per confidence bin, a line per model (its first run that
    has calibration figures), beside the diagonal of perfect calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", label="perfectly calibrated")
    shown = set()
    for run in _ok(report["runs"]):
        figures = run.get("calibration") or {}
        if run["model"] in shown or not figures.get("entities"):
            continue
        shown.add(run["model"])
        bins = [b for b in figures["bins"] if b["count"]]
        ax.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            marker="o",
            label=f"{run['model']} [{run['variant']}] ECE {figures['ece']:.3f}",
        )
    ax.set(xlabel="entity confidence (bin mean)", ylabel="share of those entities that are right", xlim=(0, 1))
    ax.set(ylim=(0, 1), title="Calibration of entity confidences")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(report: dict, out: Path) -> None:
    out = Path(out)
    atomic_write_json(out / REPORT, report)
    render(out)


def render(out: Path) -> None:
    """Write report.md, pareto.png and reliability.png from ``out/report.json`` (``REPORT``)."""
    out = Path(out)
    report = json.loads((out / REPORT).read_text(encoding="utf-8"))
    atomic_write(out / "report.md", markdown(report).encode("utf-8"))
    if _ok(report["runs"]):
        pareto_png(report, out / "pareto.png")
        reliability_png(report, out / "reliability.png")
