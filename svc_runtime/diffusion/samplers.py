"""Fast diffusion samplers, written once for every array type (numpy or torch).

Each sampler walks a noised normalised mel ``x`` [B, 1, M, T] from step ``k_step``
back to 0 by calling ``denoise(x, t) -> eps`` (the WaveNet's noise prediction at
diffusion step ``t``, a Python float) and combining arrays with Python-float
coefficients only, so the very same code runs the torch model in training and the
ONNX denoiser graph in the runtime. The step grids and coefficients follow
so-vits-svc 4.1 (``diffusion/diffusion.py`` and its DPM-Solver copy):

- ``ddim``: steps ``k-1-(k-1) % s, ..., s, 0`` taken as ``reversed(range(0, k, s))``,
  deterministic DDIM update towards ``max(t - s, 0)``.
- ``pndm``: the PLMS update with a Runge-Kutta-like first step (two calls) and
  Adams-Bashforth combinations of up to four noise predictions.
- ``dpm-solver`` / ``dpm-solver++``: multistep DPM-Solver of order 2 (noise or data
  prediction) on the discrete schedule ``betas[:k]`` with ``k // s`` time-uniform
  steps, first-order final step (``lower_order_final``), model time ``(t - 1/k) * k``.
- ``unipc``: multistep UniPC (variant B(h) = expm1(h), data prediction, order 2) on the
  same grid; the corrector's model call is reused as the next step's history, the last
  step is first order without corrector.

Quirk kept from the reference: the shallow start noises the mel to step ``k - 1``
while DDIM/PLMS begin their grid at the largest multiple of ``s`` below ``k``.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import numpy as np

from svc_runtime.diffusion.schedule import NoiseSchedule

Array = TypeVar("Array")
DenoiseFn = Callable[[Array, float], Array]

METHODS = ("ddim", "pndm", "dpm-solver", "dpm-solver++", "unipc")


def sample(
    denoise: DenoiseFn,
    x: Array,
    schedule: NoiseSchedule,
    k_step: int,
    method: str = "dpm-solver++",
    speedup: int = 10,
) -> Array:
    """Run ``method`` from step ``k_step`` with speed-up factor ``speedup``; returns x at step 0."""
    schedule.check_k_step(k_step)
    if speedup < 1:
        raise ValueError(f"speedup must be >= 1, got {speedup}")
    if method == "ddim":
        return ddim(denoise, x, schedule, k_step, speedup)
    if method == "pndm":
        return pndm(denoise, x, schedule, k_step, speedup)
    if method in ("dpm-solver", "dpm-solver++"):
        return dpm_solver_multistep(denoise, x, schedule, k_step, speedup, data_prediction=method == "dpm-solver++")
    if method == "unipc":
        return unipc_bh2(denoise, x, schedule, k_step, speedup)
    raise ValueError(f"unknown sampler {method!r}; choose one of {METHODS}")


def sampler_steps(k_step: int, speedup: int) -> list[int]:
    """The DDIM/PLMS grid of so-vits-svc: ``reversed(range(0, k_step, speedup))``."""
    return list(reversed(range(0, k_step, speedup)))


def count_denoiser_calls(k_step: int, method: str, speedup: int) -> int:
    """How many times ``method`` calls the denoiser (for timing and progress)."""
    if method == "ddim":
        return len(sampler_steps(k_step, speedup))
    if method == "pndm":
        return len(sampler_steps(k_step, speedup)) + 1
    if method in ("dpm-solver", "dpm-solver++", "unipc"):
        return k_step // speedup
    raise ValueError(f"unknown sampler {method!r}; choose one of {METHODS}")


def ddim(denoise: DenoiseFn, x: Array, schedule: NoiseSchedule, k_step: int, speedup: int) -> Array:
    ac = schedule.alphas_cumprod
    for t in sampler_steps(k_step, speedup):
        a_t, a_prev = float(ac[t]), float(ac[max(t - speedup, 0)])
        eps = denoise(x, float(t))
        # x_prev = sqrt(a_prev) * (x / sqrt(a_t) + (sqrt((1-a_prev)/a_prev) - sqrt((1-a_t)/a_t)) * eps)
        coef_x = np.sqrt(a_prev) / np.sqrt(a_t)
        coef_eps = np.sqrt(a_prev) * (np.sqrt((1.0 - a_prev) / a_prev) - np.sqrt((1.0 - a_t) / a_t))
        x = x * float(coef_x) + eps * float(coef_eps)
    return x


def _plms_move(x: Array, eps: Array, a_t: float, a_prev: float) -> Array:
    """PLMS transfer from alpha-bar a_t to a_prev given a noise estimate (PNDM paper, eq. 11)."""
    sq_t, sq_prev = np.sqrt(a_t), np.sqrt(a_prev)
    coef_x = (a_prev - a_t) / (sq_t * (sq_t + sq_prev))
    coef_eps = -(a_prev - a_t) / (sq_t * (np.sqrt((1.0 - a_prev) * a_t) + np.sqrt((1.0 - a_t) * a_prev)))
    return x + x * float(coef_x) + eps * float(coef_eps)


def pndm(denoise: DenoiseFn, x: Array, schedule: NoiseSchedule, k_step: int, speedup: int) -> Array:
    ac = schedule.alphas_cumprod
    history: list[Array] = []
    for t in sampler_steps(k_step, speedup):
        t_prev = max(t - speedup, 0)
        a_t, a_prev = float(ac[t]), float(ac[t_prev])
        eps = denoise(x, float(t))
        if not history:
            x_pred = _plms_move(x, eps, a_t, a_prev)
            eps_next = denoise(x_pred, float(t_prev))
            eps_prime = (eps + eps_next) * 0.5
        elif len(history) == 1:
            eps_prime = (eps * 3.0 - history[-1]) * 0.5
        elif len(history) == 2:
            eps_prime = (eps * 23.0 - history[-1] * 16.0 + history[-2] * 5.0) * (1.0 / 12.0)
        else:
            eps_prime = (eps * 55.0 - history[-1] * 59.0 + history[-2] * 37.0 - history[-3] * 9.0) * (1.0 / 24.0)
        x = _plms_move(x, eps_prime, a_t, a_prev)
        history = (history + [eps])[-3:]
    return x


class DiscreteVPSchedule:
    """DPM-Solver's continuous-time view of the first ``k`` discrete steps.

    t_n = (n + 1) / k, log alpha(t) = piecewise-linear interpolation of
    0.5 * cumsum(log(1 - beta)) over those points (float64).
    """

    def __init__(self, schedule: NoiseSchedule, k_step: int) -> None:
        betas = schedule.betas[:k_step]
        self.total_n = k_step
        self.t_array = np.linspace(0.0, 1.0, k_step + 1)[1:]
        self.log_alpha_array = 0.5 * np.cumsum(np.log(1.0 - betas))

    def log_alpha(self, t: float) -> float:
        return float(np.interp(t, self.t_array, self.log_alpha_array))

    def alpha(self, t: float) -> float:
        return float(np.exp(self.log_alpha(t)))

    def sigma(self, t: float) -> float:
        return float(np.sqrt(1.0 - np.exp(2.0 * self.log_alpha(t))))

    def lam(self, t: float) -> float:
        la = self.log_alpha(t)
        return la - 0.5 * float(np.log(1.0 - np.exp(2.0 * la)))

    def model_time(self, t: float) -> float:
        """Continuous t in [1/k, 1] to the denoiser's step label in [0, k-1]."""
        return (t - 1.0 / self.total_n) * self.total_n


def dpm_solver_multistep(
    denoise: DenoiseFn,
    x: Array,
    schedule: NoiseSchedule,
    k_step: int,
    speedup: int,
    data_prediction: bool = True,
) -> Array:
    """Multistep DPM-Solver (order 2, 'dpmsolver' solver type, time-uniform steps)."""
    steps = _steps_or_fail(k_step, speedup, "dpm-solver")
    vp = DiscreteVPSchedule(schedule, k_step)
    times = np.linspace(1.0, 1.0 / vp.total_n, steps + 1)

    def model(x_t: Array, t: float) -> Array:
        eps = denoise(x_t, vp.model_time(t))
        if not data_prediction:
            return eps
        return (x_t - eps * vp.sigma(t)) * (1.0 / vp.alpha(t))

    def first_order(x_s: Array, m_s: Array, s: float, t: float) -> Array:
        h = vp.lam(t) - vp.lam(s)
        if data_prediction:
            return x_s * (vp.sigma(t) / vp.sigma(s)) - m_s * (vp.alpha(t) * float(np.expm1(-h)))
        return x_s * float(np.exp(vp.log_alpha(t) - vp.log_alpha(s))) - m_s * (vp.sigma(t) * float(np.expm1(h)))

    def second_order(x_s: Array, m_prev: Array, m_s: Array, t_prev: float, s: float, t: float) -> Array:
        h_0 = vp.lam(s) - vp.lam(t_prev)
        h = vp.lam(t) - vp.lam(s)
        d1 = (m_s - m_prev) * (h / h_0)
        if data_prediction:
            phi = vp.alpha(t) * float(np.expm1(-h))
            return x_s * (vp.sigma(t) / vp.sigma(s)) - m_s * phi - d1 * (0.5 * phi)
        phi = vp.sigma(t) * float(np.expm1(h))
        return x_s * float(np.exp(vp.log_alpha(t) - vp.log_alpha(s))) - m_s * phi - d1 * (0.5 * phi)

    models = [model(x, float(times[0]))]
    x = first_order(x, models[-1], float(times[0]), float(times[1]))
    models.append(model(x, float(times[1])))
    for step in range(2, steps + 1):
        s, t = float(times[step - 1]), float(times[step])
        if step == steps:  # lower_order_final: the last step is first order
            x = first_order(x, models[-1], s, t)
        else:
            x = second_order(x, models[-2], models[-1], float(times[step - 2]), s, t)
            models = [models[-1], model(x, t)]
    return x


def _steps_or_fail(k_step: int, speedup: int, name: str) -> int:
    steps = k_step // speedup
    if steps < 2:
        raise ValueError(
            f"{name} needs at least 2 steps: k_step // speedup = {k_step} // {speedup} = {steps}; "
            "lower the speed-up or use ddim"
        )
    return steps


def unipc_bh2(denoise: DenoiseFn, x: Array, schedule: NoiseSchedule, k_step: int, speedup: int) -> Array:
    """Multistep UniPC-2 with B(h) = expm1(h) in data prediction (so-vits-svc's ``unipc``)."""
    steps = _steps_or_fail(k_step, speedup, "unipc")
    vp = DiscreteVPSchedule(schedule, k_step)
    times = np.linspace(1.0, 1.0 / vp.total_n, steps + 1)

    def model(x_t: Array, t: float) -> Array:
        eps = denoise(x_t, vp.model_time(t))
        return (x_t - eps * vp.sigma(t)) * (1.0 / vp.alpha(t))

    def update(x_s, models, t_prev, t, order, corrector):
        """One UniPC step from t_prev[-1] to t; returns (x_t, model at the predicted x_t or None)."""
        s = t_prev[-1]
        h = vp.lam(t) - vp.lam(s)
        hh = -h
        h_phi_1 = float(np.expm1(hh))
        b_h = h_phi_1
        alpha_t = vp.alpha(t)
        x_base = x_s * (vp.sigma(t) / vp.sigma(s)) - models[-1] * (alpha_t * h_phi_1)
        d1 = None
        if order == 2:
            rk = (vp.lam(t_prev[-2]) - vp.lam(s)) / h
            d1 = (models[-2] - models[-1]) * (1.0 / rk)
            x_t = x_base - d1 * (alpha_t * b_h * 0.5)  # predictor, rho_p = 0.5 for order 2
        else:
            x_t = x_base
        if not corrector:
            return x_t, None
        model_t = model(x_t, t)
        d1_t = model_t - models[-1]
        if order == 1:
            return x_base - d1_t * (alpha_t * b_h * 0.5), model_t
        h_phi_k = h_phi_1 / hh - 1.0
        b = np.array([h_phi_k / b_h, (h_phi_k / hh - 0.5) * 2.0 / b_h])
        rho = np.linalg.solve(np.array([[1.0, 1.0], [rk, 1.0]]), b)
        return x_base - (d1 * float(rho[0]) + d1_t * float(rho[1])) * (alpha_t * b_h), model_t

    t_prev = [float(times[0])]
    models = [model(x, t_prev[0])]
    x, model_x = update(x, models, t_prev, float(times[1]), 1, corrector=True)
    t_prev.append(float(times[1]))
    models.append(model_x)
    for step in range(2, steps + 1):
        t = float(times[step])
        last = step == steps
        x, model_x = update(x, models, t_prev, t, 1 if last else 2, corrector=not last)
        t_prev = [t_prev[-1], t]
        models = [models[-1], model_x]
    return x


__all__ = [
    "METHODS",
    "DiscreteVPSchedule",
    "count_denoiser_calls",
    "ddim",
    "dpm_solver_multistep",
    "pndm",
    "sample",
    "sampler_steps",
    "unipc_bh2",
]
