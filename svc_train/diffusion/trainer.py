"""Training loop of the diffusion model (so-vits-svc 4.1's ``train_diff.py`` conventions).

Checkpoints ``<expdir>/model_<step>.pt`` hold ``{"global_step", "model"[, "optimizer"]}``
(the optimizer only with ``train.save_opt``); the newest one is resumed. Every
``interval_val`` steps the model is saved, the previous save deleted unless its step is a
multiple of ``interval_force_save``, and the validation loss logged. Scalars go to
TensorBoard under ``<expdir>/logs`` and the resolved config to ``<expdir>/config.yaml``.
Under torchrun the same loop runs with DistributedDataParallel; only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from svc_runtime.atomic import atomic_output
from svc_train.diffusion.config import DiffusionConfig
from svc_train.diffusion.data import DiffusionDataset
from svc_train.diffusion.unit2mel import Unit2Mel
from svc_train.safe_pickle import read_weights_only
from svc_train.training.distributed import pick_device

CHECKPOINT_PATTERN = re.compile(r"^model_(\d+)\.pt$")
VALIDATION_SEED = 1234


class DiffusionCheckpointError(ValueError):
    """A diffusion checkpoint that cannot be used; names the file and the problem."""


@dataclass
class TrainReport:
    steps: int = 0
    losses: list[float] = field(default_factory=list)
    validation: list[tuple[int, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    resumed_from: Path | None = None
    model: Unit2Mel | None = None  # the trained model (every rank holds the same weights)


def checkpoint_path(expdir: Path, step: int) -> Path:
    return expdir / f"model_{step}.pt"


def latest_checkpoint(expdir: Path) -> Path | None:
    found = [(int(m.group(1)), p) for p in expdir.glob("model_*.pt") if (m := CHECKPOINT_PATTERN.match(p.name))]
    return max(found)[1] if found else None


def read_diffusion_checkpoint(path: Path) -> dict:
    """A so-vits-svc diffusion ``model_*.pt`` (a dict with a 'model' state dict), read weights-only."""
    checkpoint = read_weights_only(path, "a diffusion checkpoint", DiffusionCheckpointError)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise DiffusionCheckpointError(f"{path} has no 'model' state dict; is it a so-vits-svc diffusion model_*.pt?")
    return checkpoint


def out_dims_of(state: dict[str, torch.Tensor]) -> int:
    key = "decoder.denoise_fn.input_projection.weight"
    if key not in state:
        raise DiffusionCheckpointError(f"state dict lacks {key}; not a Unit2Mel diffusion model")
    return int(state[key].shape[1])


def load_diffusion(checkpoint: str | Path, config: str | Path | DiffusionConfig) -> tuple[Unit2Mel, DiffusionConfig]:
    """Unit2Mel in eval mode from a ``model_*.pt`` and its diffusion.yaml (mel count read from the weights)."""
    config = config if isinstance(config, DiffusionConfig) else DiffusionConfig.load(config)
    state = read_diffusion_checkpoint(Path(checkpoint))["model"]
    model = Unit2Mel.from_config(config, out_dims_of(state))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise DiffusionCheckpointError(
            f"{checkpoint} does not match the config: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    return model.eval(), config


class _LossModule(nn.Module):
    """Puts the training loss behind ``forward`` so DistributedDataParallel can wrap it."""

    def __init__(self, model: Unit2Mel) -> None:
        super().__init__()
        self.model = model

    def forward(self, units, f0, volume, spk_id, mel, aug_shift) -> torch.Tensor:
        return self.model.loss(units, f0, volume, spk_id, mel, aug_shift)


def _batch_loss(model: nn.Module, batch: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
    """``model``: a :class:`Unit2Mel` or a (DDP-wrapped) :class:`_LossModule`."""
    batch = {k: v.to(device) for k, v in batch.items()}
    args = (batch["units"], batch["f0"], batch["volume"], batch["spk_id"], batch["mel"], batch["aug_shift"])
    return model.loss(*args) if isinstance(model, Unit2Mel) else model(*args)


@torch.no_grad()
def validation_loss(model: Unit2Mel, loader: DataLoader, device: torch.device, repeats: int = 4) -> float:
    """Mean loss over the validation clips with a fixed seed (comparable across steps)."""
    model.eval()
    state = torch.random.get_rng_state()
    torch.manual_seed(VALIDATION_SEED)
    total, count = 0.0, 0
    for batch in loader:
        for _ in range(repeats):
            total += float(_batch_loss(model, batch, device))
            count += 1
    torch.random.set_rng_state(state)
    model.train()
    return total / max(count, 1)


@dataclass(frozen=True)
class _Process:
    """This process's place in a torchrun job (WORLD_SIZE/RANK/LOCAL_RANK; one process without them)."""

    rank: int
    world_size: int
    device: torch.device
    owns_group: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def join(cls, requested: str) -> _Process:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        device = pick_device(requested, local_rank)  # CUDA asked for and missing is an error, as in svc-train train
        owns = False
        if world_size > 1 and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend, init_method="env://", world_size=world_size, rank=rank)
            owns = True
        return cls(rank, world_size, device, owns)

    def leave(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def train(
    config: DiffusionConfig,
    out_dims: int,
    max_steps: int | None = None,
    resume: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> TrainReport:
    """Train from ``config`` (file lists of cached features, see :mod:`svc_train.diffusion.data`).

    ``out_dims``: the vocoder's mel count. Stops after ``max_steps`` optimizer steps in
    this run (None: ``train.epochs``) and always saves a final checkpoint. Under torchrun
    (``WORLD_SIZE`` > 1) it trains with DistributedDataParallel (gloo on CPU, nccl on GPU);
    rank 0 logs, validates and saves.
    """
    process = _Process.join(config.device)
    try:
        return _train(config, out_dims, max_steps, resume, log, process)
    finally:
        process.leave()


def _train(config, out_dims, max_steps, resume, log, process: _Process) -> TrainReport:
    from torch.utils.tensorboard import SummaryWriter

    t = config.train
    device = process.device
    torch.manual_seed(t.seed)  # same initial weights on every rank
    expdir = Path(config.env.expdir)
    if process.is_main:
        expdir.mkdir(parents=True, exist_ok=True)
        config.save(expdir / "config.yaml")

    model = Unit2Mel.from_config(config, out_dims).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    report = TrainReport()
    step = _resume(model, optimizer, expdir if resume else None, out_dims, report, log)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", t.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, t.decay_step, gamma=t.gamma, last_epoch=step - 1 if step else -1)
    trainee: nn.Module = _LossModule(model)
    if process.world_size > 1:
        trainee = DistributedDataParallel(trainee, device_ids=[device.index] if device.type == "cuda" else None)

    loader, sampler, valid_loader = _loaders(config, process)
    amp = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[t.amp_dtype]
    scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)
    writer = SummaryWriter(str(expdir / "logs")) if process.is_main else None
    model.train()
    started, last_saved = time.time(), None
    finished = False
    try:
        for epoch in range(t.epochs):
            if finished:
                break
            if sampler is not None:
                sampler.set_epoch(epoch)
            for batch in loader:
                if max_steps is not None and report.steps >= max_steps:
                    finished = True
                    break
                optimizer.zero_grad(set_to_none=True)
                autocast = torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
                with autocast:
                    loss = _batch_loss(trainee, batch, device)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss.item()} at step {step + 1}; lower train.lr or use fp32")
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                report.steps += 1
                report.losses.append(loss.item())
                if writer is None:
                    continue
                if step % t.interval_log == 0:
                    lr = optimizer.param_groups[0]["lr"]
                    writer.add_scalar("train/loss", report.losses[-1], step)
                    writer.add_scalar("train/lr", lr, step)
                    log(f"step {step} | loss {report.losses[-1]:.4f} | lr {lr:.3g} | {time.time() - started:.1f} s")
                if step % t.interval_val == 0:
                    last_saved = _save(model, optimizer if t.save_opt else None, expdir, step, last_saved, t.interval_force_save)
                    valid = validation_loss(model, valid_loader, device)
                    writer.add_scalar("validation/loss", valid, step)
                    report.validation.append((step, valid))
                    log(f"step {step} | validation loss {valid:.4f} | saved {last_saved.name}")
    finally:
        if writer is not None:
            writer.close()
    if process.is_main and (last_saved is None or last_saved != checkpoint_path(expdir, step)):
        last_saved = _save(model, optimizer if t.save_opt else None, expdir, step, None, t.interval_force_save)
    report.checkpoint = last_saved
    report.model = model.eval()
    return report


def _resume(model, optimizer, expdir: Path | None, out_dims: int, report: TrainReport, log) -> int:
    """Load the latest ``model_*.pt`` of ``expdir`` (None: start afresh) into model and optimizer; its step."""
    previous = latest_checkpoint(expdir) if expdir is not None and expdir.is_dir() else None
    if previous is None:
        return 0
    checkpoint = read_diffusion_checkpoint(previous)
    if out_dims_of(checkpoint["model"]) != out_dims:
        raise DiffusionCheckpointError(f"{previous} renders {out_dims_of(checkpoint['model'])} mels, the vocoder {out_dims}")
    model.load_state_dict(checkpoint["model"])
    if "optimizer" in checkpoint:
        optimizer.load_state_dict(checkpoint["optimizer"])
    step = int(checkpoint.get("global_step", 0))
    report.resumed_from = previous
    log(f"resumed from {previous} at step {step}")
    return step


def _loaders(config: DiffusionConfig, process: _Process) -> tuple[DataLoader, DistributedSampler | None, DataLoader]:
    """Training loader (this rank's share, with its sampler under torchrun) and the whole-clip validation loader."""
    t = config.train
    train_set = DiffusionDataset(config.data.training_files, config)
    sampler = DistributedSampler(train_set, process.world_size, process.rank, seed=t.seed) if process.world_size > 1 else None
    per_rank = max(1, min(t.batch_size, len(train_set) // process.world_size))
    loader = DataLoader(train_set, batch_size=per_rank, shuffle=sampler is None, sampler=sampler, drop_last=True,
                        num_workers=t.num_workers, persistent_workers=t.num_workers > 0)
    valid_loader = DataLoader(DiffusionDataset(config.data.validation_files, config, whole=True, augment=False), batch_size=1)
    return loader, sampler, valid_loader


def _save(model, optimizer, expdir: Path, step: int, previous: Path | None, force_every: int) -> Path:
    path = checkpoint_path(expdir, step)
    payload = {"global_step": step, "model": model.state_dict()}
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    with atomic_output(path) as handle:
        torch.save(payload, handle)
    if previous is not None and previous != path:
        match = CHECKPOINT_PATTERN.match(previous.name)
        if match and int(match.group(1)) % force_every != 0:
            previous.unlink(missing_ok=True)
    return path


__all__ = [
    "DiffusionCheckpointError",
    "TrainReport",
    "latest_checkpoint",
    "load_diffusion",
    "read_diffusion_checkpoint",
    "train",
    "validation_loss",
]
