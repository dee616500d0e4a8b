"""Process-group setup for torchrun (DDP): gloo on CPU, nccl on GPU; rank 0 is the main process."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(requested: str | None, local_rank: int) -> torch.device:
    """``requested`` ("cpu", "cuda", "cuda:N") or, when None, CUDA if available else CPU."""
    if requested is None:
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def init_distributed(requested_device: str | None = None) -> DistributedContext:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1, else run as a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://", world_size=world_size, rank=rank)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def barrier(ctx: DistributedContext) -> None:
    if ctx.distributed:
        dist.barrier()


def shutdown(ctx: DistributedContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["DistributedContext", "barrier", "init_distributed", "pick_device", "shutdown"]
