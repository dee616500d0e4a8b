"""The so-vits-svc 4.1 training loop (``train.py``), on CPU or GPU, single process or DDP via torchrun.

Per step, as the reference: the generator's training forward on a random
``segment_size`` window; the discriminator step on (real, detached generated)
audio; then the generator step on GAN + feature-matching + ``c_mel`` x mel L1 +
``c_kl`` x KL (+ log-F0 MSE with the automatic F0 decoder). AdamW for both,
the learning rate set per epoch (:func:`learning_rate_at`), optional mixed
precision (``fp16_run``: float16 with a gradient scaler, or bfloat16 with
``half_type: "bf16"``), gradient norms logged and optionally value-clipped.

Every ``eval_interval`` steps the main process evaluates on the validation
clips and writes ``G_<step>.pth`` / ``D_<step>.pth`` (so-vits-svc's layout,
``iteration`` = epoch), keeping the newest ``keep_ckpts``. A run resumes from
the newest pair in the model folder at the next step; a pair named
``G_0.pth``/``D_0.pth`` alone is a pretrained base to fine-tune from.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.markup import escape
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from svc_train.checkpoint import load_checkpoint, save_checkpoint
from svc_train.config import SvcConfig
from svc_train.data.config_builder import read_filelist
from svc_train.data.dataset import Batch, SvcDataset, collate
from svc_train.losses import discriminator_loss, feature_loss, generator_loss, kl_loss
from svc_train.mel import SpectrogramCache, mel_spectrogram_torch, spec_to_mel_torch
from svc_train.models.discriminator import MultiPeriodDiscriminator
from svc_train.models.synthesizer import SynthesizerTrn
from svc_train.training.checkpoints import checkpoint_step, clean_checkpoints, latest_pair, load_matching_weights
from svc_train.training.distributed import DistributedContext, barrier, init_distributed, shutdown
from svc_train.training.options import TrainOptions
from svc_train.training.progress import TrainingProgress, console_interval
from svc_train.training.schedule import learning_rate_at
from svc_train.training.summary import TrainingLog, plot_curves, plot_spectrogram


def slice_segments(x: torch.Tensor, starts: torch.Tensor, size: int) -> torch.Tensor:
    """Windows ``x[i, ..., starts[i]:starts[i] + size]`` of x [B, C, T] -> [B, C, size]."""
    return torch.stack([x[i, :, int(s) : int(s) + size] for i, s in enumerate(starts.tolist())])


def grad_norm_and_clip(parameters, clip_value: float | None) -> float:
    """Total 2-norm of the gradients (so-vits-svc's ``clip_grad_value_``), clamping them when asked."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    total = torch.norm(torch.stack([g.detach().float().norm(2) for g in grads]), 2).item()
    if clip_value is not None:
        for g in grads:
            g.clamp_(min=-clip_value, max=clip_value)
    return total


class Trainer:
    """Builds everything from the config and runs the loop; see the module docstring."""

    def __init__(self, options: TrainOptions, console: Console | None = None) -> None:
        self.options = options
        self.console = console or Console(stderr=True)
        self.ctx: DistributedContext = init_distributed(options.device)
        self.config = SvcConfig.load(options.config_path)
        self.model_dir = Path(options.model_dir)
        t = self.config.train
        if self.ctx.is_main:
            self.model_dir.mkdir(parents=True, exist_ok=True)
            target = self.model_dir / "config.json"
            if Path(options.config_path).resolve() != target.resolve():
                shutil.copyfile(options.config_path, target)
        barrier(self.ctx)
        torch.manual_seed(t.seed + self.ctx.rank)
        self.device = self.ctx.device
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.segment_frames = self.config.segment_frames
        self.spectrogram_cache = SpectrogramCache()

        self.train_set = SvcDataset(
            self.config.data.training_files, self.config, all_in_mem=t.all_in_mem, vol_aug=True,
            min_frames=self.segment_frames, seed=t.seed,
        )
        self.sampler = DistributedSampler(
            self.train_set, num_replicas=self.ctx.world_size, rank=self.ctx.rank, shuffle=True, seed=t.seed
        )
        workers = 0 if t.all_in_mem else options.workers
        self.train_loader = DataLoader(
            self.train_set, batch_size=t.batch_size, sampler=self.sampler, collate_fn=collate,
            num_workers=workers, pin_memory=self.device.type == "cuda", drop_last=False,
        )
        self.eval_set = None
        self.log = None
        if self.ctx.is_main:
            if read_filelist(Path(self.config.data.validation_files)):
                self.eval_set = SvcDataset(self.config.data.validation_files, self.config, all_in_mem=t.all_in_mem,
                                           vol_aug=False, seed=t.seed)
            else:
                self.console.print(f"[yellow]{escape(str(self.config.data.validation_files))} is empty: no evaluation[/]")
            self.log = TrainingLog(self.model_dir, tensorboard=options.tensorboard)
            if self.train_set.too_short:
                self.console.print(
                    f"[yellow]{len(self.train_set.too_short)} training clip(s) shorter than segment_size "
                    f"({self.segment_frames} frames) left out:[/] "
                    + escape(", ".join(p.name for p in self.train_set.too_short[:5]))
                    + (" ..." if len(self.train_set.too_short) > 5 else ""),
                    soft_wrap=True,
                )

        self.net_g: nn.Module = SynthesizerTrn.from_config(self.config).to(self.device)
        self.net_d: nn.Module = MultiPeriodDiscriminator(
            self.config.model.use_spectral_norm, channel_scale=options.discriminator_scale
        ).to(self.device)
        self.optim_g = torch.optim.AdamW(self.net_g.parameters(), t.learning_rate, betas=t.betas, eps=t.eps)
        self.optim_d = torch.optim.AdamW(self.net_d.parameters(), t.learning_rate, betas=t.betas, eps=t.eps)
        self.epoch, self.step, self.resumed_from = self._restore()
        if self.ctx.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net_g = DistributedDataParallel(self.net_g, device_ids=ids)
            self.net_d = DistributedDataParallel(self.net_d, device_ids=ids)

        self.amp_enabled = bool(t.fp16_run)
        self.amp_dtype = torch.bfloat16 if t.half_type in ("bf16", "bfloat16") else torch.float16
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_enabled and self.amp_dtype == torch.float16
        )

    # ------------------------------------------------------------------ setup
    def _restore(self) -> tuple[int, int, Path | None]:
        """Load the newest G/D pair of the model folder: returns (epoch, next step, G path or None)."""
        pair = latest_pair(self.model_dir)
        if pair is None:
            return 1, 0, None
        g_path, d_path = pair
        step = checkpoint_step(g_path)
        if step == 0:  # pretrained base: weights only, where they fit; a new run from step 1
            notes = load_matching_weights(g_path, self.net_g) + load_matching_weights(d_path, self.net_d)
            if self.ctx.is_main:
                self.console.print(escape(f"fine-tuning from {g_path.name} / {d_path.name}"))
                for note in notes:
                    self.console.print(f"[yellow]kept initial weights[/] {escape(note)}", soft_wrap=True)
            return 1, 1, g_path
        epoch, _ = load_checkpoint(g_path, self.net_g, self.optim_g)
        load_checkpoint(d_path, self.net_d, self.optim_d)
        for optimizer in (self.optim_g, self.optim_d):  # optimizer state on the training device
            for state in optimizer.state.values():
                for key, value in state.items():
                    if isinstance(value, torch.Tensor) and key != "step":
                        state[key] = value.to(self.device)
        if self.ctx.is_main:
            self.console.print(escape(f"resumed from {g_path.name} / {d_path.name} at step {step + 1}, epoch {max(epoch, 1)}"))
        return max(epoch, 1), step + 1, g_path

    def learning_rate(self, epoch: int) -> float:
        t = self.config.train
        return learning_rate_at(epoch, t.learning_rate, t.lr_decay, t.warmup_epochs)

    @property
    def generator(self) -> SynthesizerTrn:
        return self.net_g.module if isinstance(self.net_g, DistributedDataParallel) else self.net_g

    def _autocast(self):
        if not self.amp_enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _mel_from_spec(self, spec: torch.Tensor) -> torch.Tensor:
        d = self.config.data
        return spec_to_mel_torch(spec, d.filter_length, d.n_mel_channels, d.sampling_rate, d.mel_fmin, d.mel_fmax,
                                 cache=self.spectrogram_cache)

    def _mel_from_audio(self, audio: torch.Tensor) -> torch.Tensor:
        d = self.config.data
        return mel_spectrogram_torch(audio.float(), d.filter_length, d.n_mel_channels, d.sampling_rate, d.hop_length,
                                     d.win_length, d.mel_fmin, d.mel_fmax, cache=self.spectrogram_cache)

    # ------------------------------------------------------------------- loop
    def run(self) -> int:
        """Train until ``max_steps`` or the configured epochs; returns the last step trained (-1: none)."""
        t = self.config.train
        max_steps = self.options.max_steps
        last_step = -1
        last_saved = None
        if self.log is not None:
            self.log.record({
                "event": "start", "step": self.step, "epoch": self.epoch, "world_size": self.ctx.world_size,
                "device": str(self.device), "learning_rate": self.learning_rate(self.epoch),
                "resumed_from": self.resumed_from.name if self.resumed_from else None,
            })
        progress = self._progress() if self.ctx.is_main else contextlib.nullcontext()
        try:
            with progress:
                while self.epoch <= t.epochs and (max_steps is None or self.step < max_steps):
                    lr = self.learning_rate(self.epoch)
                    for optimizer in (self.optim_g, self.optim_d):
                        for group in optimizer.param_groups:
                            group["lr"] = lr
                    self.sampler.set_epoch(self.epoch)
                    self.train_set.set_epoch(self.epoch)
                    epoch_start = time.perf_counter()
                    finished_epoch = True
                    for batch in self.train_loader:
                        if max_steps is not None and self.step >= max_steps:
                            finished_epoch = False
                            break
                        losses = self.train_step(batch)
                        last_step = self.step
                        if self.ctx.is_main:
                            progress.step_done(self.step, self.epoch, self._record(losses, lr), lr)
                            if self.step % t.eval_interval == 0 and self.step > 0:
                                if self.eval_set is not None:
                                    self.evaluate()
                                self.save(self.step)
                                last_saved = self.step
                        self.step += 1
                    if finished_epoch:
                        if self.ctx.is_main:
                            self.console.print(f"epoch {self.epoch} done in {time.perf_counter() - epoch_start:.1f} s")
                        self.epoch += 1
                if self.ctx.is_main and last_step >= 0 and last_saved != last_step:
                    self.save(last_step)  # the state where the run stopped, so that a resume continues from it
        finally:
            barrier(self.ctx)
            if self.log is not None:
                self.log.close()
            shutdown(self.ctx)
        return last_step

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor | float]:
        """One discriminator and one generator update on ``batch``; returns the losses."""
        t, d = self.config.train, self.config.data
        self.net_g.train()
        self.net_d.train()
        batch = Batch(*(x.to(self.device, non_blocking=True) if x is not None else None for x in batch))
        with torch.no_grad():
            mel = self._mel_from_spec(batch.spec)
        with self._autocast():
            y_hat, ids_slice, z_mask, (_, z_p, m_p, logs_p, _, logs_q), pred_lf0, norm_lf0, lf0 = self.net_g(
                batch.c, batch.f0, batch.uv, batch.spec, g=batch.speaker, c_lengths=batch.lengths,
                spec_lengths=batch.lengths, vol=batch.volume,
            )
            y_mel = slice_segments(mel, ids_slice, self.segment_frames)
            y_hat_mel = self._mel_from_audio(y_hat.squeeze(1))
            y = slice_segments(batch.audio, ids_slice * d.hop_length, t.segment_size)
            y_d_hat_r, y_d_hat_g, _, _ = self.net_d(y, y_hat.detach())
            loss_disc, _, _ = discriminator_loss(y_d_hat_r, y_d_hat_g)
        self.optim_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_disc).backward()
        self.scaler.unscale_(self.optim_d)
        grad_norm_d = grad_norm_and_clip(self.net_d.parameters(), self.options.grad_clip)
        self.scaler.step(self.optim_d)

        with self._autocast():
            _, y_d_hat_g, fmap_r, fmap_g = self.net_d(y, y_hat)
            loss_mel = F.l1_loss(y_mel.float(), y_hat_mel.float()) * t.c_mel
            loss_kl = kl_loss(z_p, logs_q, m_p, logs_p, z_mask) * t.c_kl
            loss_fm = feature_loss(fmap_r, fmap_g)
            loss_gen, _ = generator_loss(y_d_hat_g)
            use_f0 = self.generator.use_automatic_f0_prediction
            loss_lf0 = F.mse_loss(pred_lf0.float(), lf0.float()) if use_f0 else torch.zeros((), device=self.device)
            loss_gen_all = loss_gen + loss_fm + loss_mel + loss_kl + loss_lf0
        self.optim_g.zero_grad(set_to_none=True)
        self.scaler.scale(loss_gen_all).backward()
        self.scaler.unscale_(self.optim_g)
        grad_norm_g = grad_norm_and_clip(self.net_g.parameters(), self.options.grad_clip)
        self.scaler.step(self.optim_g)
        self.scaler.update()
        total_g, total_d = float(loss_gen_all.detach()), float(loss_disc.detach())
        if not (math.isfinite(total_g) and math.isfinite(total_d)):
            raise FloatingPointError(
                f"step {self.step}: loss is not finite (generator {total_g}, discriminator {total_d}); "
                "lower the learning rate or turn off fp16_run"
            )
        return {
            "loss/d/total": loss_disc.detach(), "loss/g/total": loss_gen_all.detach(),
            "loss/g/gen": loss_gen.detach(), "loss/g/fm": loss_fm.detach(), "loss/g/mel": loss_mel.detach(),
            "loss/g/kl": loss_kl.detach(), "loss/g/lf0": loss_lf0.detach(),
            "grad_norm_d": grad_norm_d, "grad_norm_g": grad_norm_g,
            "_y_mel": y_mel.detach(), "_y_hat_mel": y_hat_mel.detach(), "_mel": mel,
            "_lf0": lf0, "_pred_lf0": pred_lf0, "_norm_lf0": norm_lf0,
        }

    def _progress(self) -> TrainingProgress:
        """The bar and loss lines of this run (main process)."""
        t = self.config.train
        if self.options.max_steps is not None:
            last = self.options.max_steps - 1
        else:  # the configured epochs: steps left in this epoch plus whole epochs after it
            last = self.step - 1 + max(0, t.epochs - self.epoch + 1) * len(self.train_loader)
        every = console_interval(t.log_interval, self.device.type == "cuda", self.options.log_every)
        return TrainingProgress(self.console, self.step, last, every)

    def _record(self, losses: dict, lr: float) -> dict[str, float]:
        """Log one step (metrics.jsonl; TensorBoard every ``log_interval``); returns its scalars."""
        assert self.log is not None
        scalars = {k: float(v) for k, v in losses.items() if not k.startswith("_")}
        scalars["learning_rate"] = lr
        self.log.record({"event": "train", "step": self.step, "epoch": self.epoch, **scalars})
        if self.step % self.config.train.log_interval != 0 or not self.log.tensorboard:
            return scalars
        self.log.scalars(self.step, scalars)
        images = {
            "slice/mel_org": plot_spectrogram(losses["_y_mel"][0].float().cpu().numpy()),
            "slice/mel_gen": plot_spectrogram(losses["_y_hat_mel"][0].float().cpu().numpy()),
            "all/mel": plot_spectrogram(losses["_mel"][0].float().cpu().numpy()),
        }
        if self.generator.use_automatic_f0_prediction:
            lf0 = losses["_lf0"][0, 0].float().cpu().numpy()
            images["all/lf0"] = plot_curves(lf0, losses["_pred_lf0"][0, 0].detach().float().cpu().numpy())
            images["all/norm_lf0"] = plot_curves(lf0, losses["_norm_lf0"][0, 0].detach().float().cpu().numpy())
        self.log.images(self.step, images)

    @torch.no_grad()
    def evaluate(self) -> float:
        """Convert every validation clip (``infer``), log audio, mels and the mean mel L1; returns it."""
        assert self.eval_set is not None and self.log is not None
        generator = self.generator
        generator.eval()
        audios: dict = {}
        images: dict = {}
        errors = []
        sr = self.config.data.sampling_rate
        for index in range(len(self.eval_set)):
            batch = collate([self.eval_set[index]])
            batch = Batch(*(x.to(self.device) if x is not None else None for x in batch))
            y_hat, _ = generator.infer(batch.c, batch.f0, batch.uv, batch.speaker[:, 0], vol=batch.volume)
            mel = self._mel_from_spec(batch.spec)
            y_hat_mel = self._mel_from_audio(y_hat.squeeze(1))
            frames = min(mel.shape[-1], y_hat_mel.shape[-1])
            errors.append(float(F.l1_loss(y_hat_mel[..., :frames], mel[..., :frames])))
            audios[f"gen/audio_{index}"] = y_hat[0].float().cpu().numpy()
            audios[f"gt/audio_{index}"] = batch.audio[0].float().cpu().numpy()
            if index == len(self.eval_set) - 1 and self.log.tensorboard:
                images["gen/mel"] = plot_spectrogram(y_hat_mel[0].float().cpu().numpy())
                images["gt/mel"] = plot_spectrogram(mel[0].float().cpu().numpy())
        generator.train()
        mean_error = sum(errors) / max(len(errors), 1)
        self.log.audios(self.step, audios, sr)
        self.log.images(self.step, images, evaluation=True)
        self.log.scalars(self.step, {"eval/mel_l1": mean_error}, evaluation=True)
        self.log.record({"event": "eval", "step": self.step, "epoch": self.epoch, "mel_l1": mean_error})
        return mean_error

    def save(self, step: int) -> None:
        """Write G_<step>.pth and D_<step>.pth (``iteration`` = epoch, as so-vits-svc) and clean old ones."""
        t = self.config.train
        lr = self.learning_rate(self.epoch)
        g_path = self.model_dir / f"G_{step}.pth"
        d_path = self.model_dir / f"D_{step}.pth"
        save_checkpoint(g_path, self.net_g, self.epoch, lr, self.optim_g)
        save_checkpoint(d_path, self.net_d, self.epoch, lr, self.optim_d)
        removed = clean_checkpoints(self.model_dir, t.keep_ckpts)
        assert self.log is not None
        self.log.record({"event": "save", "step": step, "epoch": self.epoch, "files": [g_path.name, d_path.name],
                         "removed": [p.name for p in removed]})
        self.console.print(escape(f"saved {g_path.name}, {d_path.name}"))


def train(options: TrainOptions, console: Console | None = None) -> int:
    """Build a :class:`Trainer` and run it; returns the last step trained."""
    return Trainer(options, console).run()


__all__ = ["TrainOptions", "Trainer", "grad_norm_and_clip", "slice_segments", "train"]
