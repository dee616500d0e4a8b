"""GAN / feature-matching / KL / mel losses against values computed by hand."""

import math

import torch

from svc_train.losses import discriminator_loss, feature_loss, generator_loss, kl_loss, mel_loss


def test_discriminator_loss_least_squares_per_discriminator():
    real = [torch.full((2, 5), 0.5), torch.full((1, 3), 1.0)]
    fake = [torch.full((2, 5), 0.25), torch.full((1, 3), -1.0)]
    total, r_losses, g_losses = discriminator_loss(real, fake)
    assert r_losses == [0.25, 0.0]
    assert g_losses == [0.0625, 1.0]
    assert math.isclose(total.item(), 0.25 + 0.0625 + 0.0 + 1.0, rel_tol=1e-7)


def test_generator_loss_pushes_fakes_towards_one():
    total, per_disc = generator_loss([torch.full((4,), 0.0), torch.full((2, 2), 2.0)])
    assert [p.item() for p in per_disc] == [1.0, 1.0]
    assert total.item() == 2.0


def test_feature_loss_is_twice_sum_of_mean_abs_and_detaches_real():
    real = [[torch.ones(2, 3, requires_grad=True), torch.zeros(4)]]
    fake = [[torch.zeros(2, 3, requires_grad=True), torch.full((4,), -0.5, requires_grad=True)]]
    loss = feature_loss(real, fake)
    assert math.isclose(loss.item(), 2 * (1.0 + 0.5))
    loss.backward()
    assert real[0][0].grad is None  # real feature maps are detached
    assert fake[0][0].grad is not None


def test_kl_loss_matches_closed_form_and_ignores_masked_frames():
    torch.manual_seed(0)
    b, c, t = 2, 3, 6
    z_p, logs_q, m_p, logs_p = (torch.randn(b, c, t) * 0.5 for _ in range(4))
    mask = torch.ones(b, 1, t)
    mask[1, :, 4:] = 0
    expected_terms = logs_p - logs_q - 0.5 + 0.5 * (z_p - m_p) ** 2 * torch.exp(-2 * logs_p)
    expected = (expected_terms * mask).sum() / mask.sum()
    torch.testing.assert_close(kl_loss(z_p, logs_q, m_p, logs_p, mask), expected)
    # Garbage in masked frames changes nothing.
    z_p2 = z_p.clone()
    z_p2[1, :, 4:] = 1e3
    torch.testing.assert_close(kl_loss(z_p2, logs_q, m_p, logs_p, mask), expected)
    # mask sums over [B, 1, T] (one count per frame, not per channel), as the reference does.
    manual = sum(
        float(expected_terms[i, :, j].sum()) for i in range(b) for j in range(t) if mask[i, 0, j] > 0
    ) / float(mask.sum())
    assert math.isclose(kl_loss(z_p, logs_q, m_p, logs_p, mask).item(), manual, rel_tol=1e-5)


def test_kl_loss_constant_term_is_minus_half_per_channel_and_frame():
    x = torch.zeros(1, 2, 3)  # 2 channels: each unmasked frame contributes 2 * -0.5, divided by 3 frames
    assert kl_loss(x, x, x, x, torch.ones(1, 1, 3)).item() == -1.0


def test_mel_loss_is_l1_in_float32():
    a = torch.zeros(1, 2, 2, dtype=torch.float16)
    b = torch.full((1, 2, 2), 0.5, dtype=torch.float16)
    loss = mel_loss(a, b)
    assert loss.dtype == torch.float32 and loss.item() == 0.5
