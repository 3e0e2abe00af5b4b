"""Data-parallel training across processes (torchrun): who this process is, and the few collectives training needs.

`torchrun --nproc_per_node=N -m deep_emotion train RECIPE ...` sets RANK, WORLD_SIZE and LOCAL_RANK; `start`
reads them and joins the process group (gloo on CPU, NCCL on CUDA). Run without torchrun, nothing is set up
and every helper here is a no-op: a single process trains exactly as it always has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Process:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs, evaluates, saves and writes the card."""
        return self.rank == 0


def start(device: torch.device) -> tuple[Process, torch.device]:
    """Join the process group torchrun describes in the environment (if any) and pick this process's device
    (cuda:LOCAL_RANK on GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Process(), device
    proc = Process(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", proc.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return proc, device


def stop(proc: Process) -> None:
    if proc.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def sum_all(t: torch.Tensor, proc: Process) -> torch.Tensor:
    """`t` summed over all processes (in place; `t` itself in a single process)."""
    if proc.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def from_main(obj: Any, proc: Process) -> Any:
    """Rank 0's `obj` on every process (e.g. whether to resume, and the state to resume from)."""
    if not proc.distributed:
        return obj
    box = [obj if proc.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(model: torch.nn.Module, proc: Process, device: torch.device) -> torch.nn.Module:
    """The model in DistributedDataParallel (gradients averaged over processes in backward); itself alone."""
    if not proc.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
