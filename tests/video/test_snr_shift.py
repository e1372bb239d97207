"""VPSchedule with CogVideoX's SNR shift + zero terminal SNR equals diffusers' CogVideoXDDIMScheduler."""
import pytest
import torch

from addbench.bases.cogvideox import SCHEDULER, SCHEDULER_5B
from addbench.schedules import VPSchedule, sampler_timesteps


@pytest.mark.parametrize("cfg", [SCHEDULER, SCHEDULER_5B], ids=["2b", "5b"])
def test_alphas_and_ddim_step_equal_diffusers(cfg):
    from diffusers import CogVideoXDDIMScheduler

    ref = CogVideoXDDIMScheduler(**cfg)
    ours = VPSchedule.from_diffusers_config(cfg)
    assert ours.snr_shift_scale == cfg["snr_shift_scale"] and ours.prediction_type == "v_prediction"
    assert torch.allclose(ours.alphas_cumprod, ref.alphas_cumprod.double(), rtol=0, atol=1e-12)
    assert ours.alphas_cumprod[-1] == 0  # zero terminal SNR: t = 999 is pure noise
    ref.set_timesteps(8)
    assert sampler_timesteps(ours, 8) == [float(t) for t in ref.timesteps]
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(2, 3, 4, 4, 4, generator=g), torch.randn(2, 3, 4, 4, 4, generator=g)
    ts = [float(t) for t in ref.timesteps]
    for t, t_next in zip(ts, ts[1:]):  # v -> x0 -> DDIM step, as the scheduler's step (eta = 0)
        x0 = ours.to_x0(v, x, t)
        step = ref.step(v, int(t), x, return_dict=False)[0]
        assert torch.allclose(ours.pf_ode_step(x, x0, t, t_next).float(), step, atol=1e-5)


def test_shift_divides_the_snr():
    plain, shifted = VPSchedule(), VPSchedule(snr_shift_scale=3.0)
    snr = lambda s: s.alphas_cumprod / (1 - s.alphas_cumprod)  # noqa: E731
    assert torch.allclose(snr(shifted), snr(plain) / 3.0, rtol=1e-9)
