"""GAN, feature-matching, KL and mel losses of so-vits-svc 4.1 (``modules/losses.py``).

Least-squares GAN losses summed over the six sub-discriminators; every input is
cast to float32 first, so the losses stay in full precision under autocast.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def feature_loss(fmap_r: Sequence[Sequence[torch.Tensor]], fmap_g: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """2 x sum over discriminators and layers of mean |real - generated| (real detached)."""
    loss = torch.zeros(())
    for layers_r, layers_g in zip(fmap_r, fmap_g):
        for real, generated in zip(layers_r, layers_g):
            loss = loss + torch.mean(torch.abs(real.float().detach() - generated.float()))
    return loss * 2


def discriminator_loss(
    disc_real_outputs: Sequence[torch.Tensor], disc_generated_outputs: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, list[float], list[float]]:
    """sum over discriminators of mean((1 - D(y))^2) + mean(D(y_hat)^2).

    Returns (total, per-discriminator real losses, per-discriminator fake losses).
    """
    loss = torch.zeros(())
    real_losses: list[float] = []
    fake_losses: list[float] = []
    for real, generated in zip(disc_real_outputs, disc_generated_outputs):
        real_loss = torch.mean((1 - real.float()) ** 2)
        fake_loss = torch.mean(generated.float() ** 2)
        loss = loss + real_loss + fake_loss
        real_losses.append(real_loss.item())
        fake_losses.append(fake_loss.item())
    return loss, real_losses, fake_losses


def generator_loss(disc_outputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """sum over discriminators of mean((1 - D(y_hat))^2); also the per-discriminator terms."""
    loss = torch.zeros(())
    per_disc: list[torch.Tensor] = []
    for generated in disc_outputs:
        term = torch.mean((1 - generated.float()) ** 2)
        per_disc.append(term)
        loss = loss + term
    return loss, per_disc


def kl_loss(
    z_p: torch.Tensor, logs_q: torch.Tensor, m_p: torch.Tensor, logs_p: torch.Tensor, z_mask: torch.Tensor
) -> torch.Tensor:
    """KL(q || p) per unmasked element, as VITS computes it with a flow sample.

    z_p, logs_q, m_p, logs_p: [B, C, T]; z_mask: [B, 1, T] (1 = valid frame).
    """
    z_p, logs_q, m_p, logs_p, z_mask = (t.float() for t in (z_p, logs_q, m_p, logs_p, z_mask))
    kl = logs_p - logs_q - 0.5
    kl = kl + 0.5 * ((z_p - m_p) ** 2) * torch.exp(-2.0 * logs_p)
    return torch.sum(kl * z_mask) / torch.sum(z_mask)


def mel_loss(y_mel: torch.Tensor, y_hat_mel: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between log-mels [B, n_mels, T] (weighted by ``c_mel`` in training)."""
    return F.l1_loss(y_mel.float(), y_hat_mel.float())


__all__ = ["discriminator_loss", "feature_loss", "generator_loss", "kl_loss", "mel_loss"]
