"""Regression losses on teacher ODE pairs: DMD's LPIPS regression and DMDX-ADP's rectified-flow velocity.

ADP (DMDX Sec. 4.2), our reading, written as the paper states it:
  1. ODE pairs (z, y) are collected offline from the teacher (z pure noise, y the clean PF-ODE endpoint).
  2. Noisy inputs are the *linear interpolation* of the pair (Rectified Flow):
         x_t = (1 - t/T) · y + (t/T) · z,    t = (1 - u³) T  (``addbench.schedules.cubic_timesteps``)
     i.e. exactly ``FlowSchedule(T).add_noise(y, z, t)``.
  3. "The generator's prediction target becomes the velocity of the ODE pair":  v = z - y
     (``FlowSchedule.target``), and its predicted endpoint is x̂0 = x_t - (t/T) v̂ (``FlowSchedule.to_x0``),
     the x̂0 fed to the latent / pixel discriminators of Eq. 9-10.
  For an ε-prediction (or v-prediction) base such as SDXL this is a *change of parameterisation*: the
  student network keeps its architecture, timestep input t ∈ [0, T] and weights, but its raw output is
  read as the flow velocity v̂ (not as ε̂), and the distilled student samples with Euler steps on the
  same linear path (the paper: "facilitate deterministic Euler sampling"). So the student's schedule
  after ADP is ``adp_schedule(base.schedule.T)``, whatever the teacher's parameterisation.
  The paper's ADP objective is the hinge GAN of Eq. 9-10 on x̂0; the velocity MSE below is the plain
  Rectified-Flow regression on the same pairs (its Table 4 A1 baseline), offered as an optional term.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from addbench.errors import AddbenchError
from addbench.schedules import FlowSchedule


def _mean_per_sample(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).float().mean(1)


# ---- DMD (v1) ODE-pair regression -------------------------------------------------------------------

def ode_regression_loss(x: torch.Tensor, y: torch.Tensor, distance: Callable | None = None,
                        decode: Callable | None = None) -> torch.Tensor:
    """DMD's regression loss  d(G(z), y)  on a pre-computed teacher ODE pair (z, y), per sample (N,).

    ``x`` = G(z) (with grad), ``y`` = teacher endpoint (detached). ``distance(a, b) -> (N,)`` defaults to
    LPIPS-VGG (``lpips_distance()``, images in [-1, 1]); ``decode`` maps latents to images first
    (``base.decode``), needed for latent bases since LPIPS works on RGB. Weight by λ_reg (DMD: 0.25; its source
    could not be re-read, distillers/PRESET_SOURCES.md).
    """
    distance = distance or lpips_distance()
    decode = decode or (lambda z: z)
    with torch.no_grad():
        y_img = decode(y.detach())
    return distance(decode(x), y_img).reshape(x.shape[0], -1).mean(1)


def lpips_distance(net: str = "vgg", device=None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """LPIPS (Zhang et al. 2018) as a frozen, differentiable distance ``(a, b) -> (N,)`` on [-1, 1] images.

    The linear heads ship with the ``lpips`` package; the backbone's ImageNet weights must already be in
    torch's hub cache (``$TORCH_HOME/hub/checkpoints``): nothing is downloaded.
    """
    import lpips
    import torchvision

    weights = {"vgg": torchvision.models.VGG16_Weights.IMAGENET1K_V1,
               "alex": torchvision.models.AlexNet_Weights.IMAGENET1K_V1,
               "squeeze": torchvision.models.SqueezeNet1_1_Weights.IMAGENET1K_V1}
    if net not in weights:
        raise AddbenchError(f"unknown LPIPS net {net!r}; choose one of {sorted(weights)}")
    from pathlib import Path
    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights[net].url).name
    if not file.is_file():
        raise AddbenchError(f"LPIPS-{net} needs the torchvision backbone weights {file}; copy "
                            f"{Path(weights[net].url).name} there (or set TORCH_HOME) - addbench downloads nothing")
    model = lpips.LPIPS(net=net, pretrained=True, verbose=False).eval().requires_grad_(False)
    if device is not None:
        model = model.to(device)

    def distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return model(a.float(), b.float()).reshape(a.shape[0])

    distance.model = model
    return distance


# ---- DMDX adversarial distillation pretraining (ADP) --------------------------------------------------

def adp_schedule(T: float) -> FlowSchedule:
    """The linear (rectified-flow) path of ADP on the base's timestep range [0, T]: α = 1 - t/T, σ = t/T."""
    return FlowSchedule(num_train_timesteps=int(round(T)))


def adp_interpolate(y: torch.Tensor, z: torch.Tensor, t, T: float) -> torch.Tensor:
    """x_t = (1 - t/T) y + (t/T) z: linear interpolation between the clean endpoint y and the pair's noise z."""
    return adp_schedule(T).add_noise(y, z, t)


def adp_velocity(y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The velocity of the ODE pair, dx_t/dt·T = z - y (constant along the straight path)."""
    return adp_schedule(1.0).target(y, z, 0.0)


def adp_x0(v_pred: torch.Tensor, x_t: torch.Tensor, t, T: float) -> torch.Tensor:
    """The student's predicted endpoint from its velocity output: x̂0 = x_t - (t/T) v̂."""
    return adp_schedule(T).to_x0(v_pred, x_t, t)


def adp_velocity_loss(v_pred: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Rectified-flow velocity regression per sample: mean_{C,H,W} (v̂ - (z - y))²."""
    return _mean_per_sample((v_pred.float() - adp_velocity(y, z).float()) ** 2)
