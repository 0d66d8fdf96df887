"""What only a GPU can show: the collectives under nccl, and a teacher and student trained on CUDA
that tag alike there and on the CPU. Skipped where CUDA is absent; the rest of the suite runs on
CUDA too where it is present (its devices default to ``auto``)."""

from __future__ import annotations

import json
import socket

import pytest
import torch

from distill.student.config import StudentTrainConfig
from distill.student.model import Student
from distill.student.train import train_student
from distill.teacher.cache import CacheConfig, build_cache
from distill.teacher.model import Teacher
from distill.teacher.train import TeacherTrainConfig, train_teacher
from distill.training import Processes
from tests.conftest import TINY_TRAINING
from tests.tiny import tiny_backbone, tiny_corpus

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")

TEXTS = ["张三在北京工作。", "李四是公司的人！", "王五和张三在上海大学学习。"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_collectives_run_on_an_nccl_group():
    """nccl refuses CPU tensors. One GPU holds a one-rank group only, so the processes below claim
    two ranks to take the collective path: rank 0 is the broadcasts' source either way, and the
    mean is the one rank's value over the two claimed."""
    torch.cuda.set_device(0)
    torch.distributed.init_process_group(
        "nccl", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1, device_id=torch.device("cuda", 0)
    )
    try:
        procs = Processes(rank=0, world=2)
        assert procs.broadcast_flag(True) is True and procs.broadcast_flag(False) is False
        assert procs.broadcast_choice("resume", ("fresh", "resume")) == "resume"
        assert procs.mean(3.0) == 1.5
    finally:
        torch.distributed.destroy_process_group()


def test_models_trained_on_cuda_in_bf16_tag_alike_on_cuda_and_cpu(tmp_path):
    backbone, data = tiny_backbone(tmp_path / "backbone"), tiny_corpus(tmp_path / "data")
    settings = {**TINY_TRAINING, "epochs": 2, "precision": "bf16"}
    train_teacher(
        TeacherTrainConfig(out=tmp_path / "teacher", data=str(data), model=str(backbone), device="cuda", **settings)
    )
    config = json.loads((tmp_path / "teacher" / "config.json").read_text())
    assert config["encoder_arithmetic"] == "bf16"
    on_gpu, on_cpu = Teacher.load(tmp_path / "teacher", "cuda"), Teacher.load(tmp_path / "teacher", "cpu")
    assert on_gpu.device.type == "cuda" and on_gpu.tag_ids(TEXTS) == on_cpu.tag_ids(TEXTS)

    build_cache(
        CacheConfig(
            teacher=tmp_path / "teacher", out=tmp_path / "cache", data=str(data), device="cuda", precision="bf16"
        )
    )
    train_student(
        StudentTrainConfig(out=tmp_path / "student", cache=tmp_path / "cache", epochs=2, hidden=16, device="cuda")
    )
    on_gpu, on_cpu = Student.load(tmp_path / "student", "cuda"), Student.load(tmp_path / "student", "cpu")
    assert on_gpu.tag_ids(TEXTS) == on_cpu.tag_ids(TEXTS)
