"""How a student's raw network output becomes an image: the readout, written once for every distiller.

A few-step student keeps the teacher's architecture and its timestep input, but the papers read its output
in different ways, and the choice decides whether a 1-step student can be trained at all:

==========================  ===================================================================================
spec                        x̂0 from the raw output ``o`` at (x_t, t)
==========================  ===================================================================================
``base``                    the teacher's own parameterisation on the teacher's schedule (SD: ε-prediction)
``epsilon``                 x̂0 = (x_t − σ_t o) / α_t  (DMD / DMD2; ill-conditioned near t = T: SD1.5 has α_T =
                            0.068, so x̂0 moves 14.6× as much as o. DMD2's SDXL 1-step script therefore tells
                            the generator t = 399 (``--conditioning_timestep 399``) while feeding pure noise)
``v_prediction``            x̂0 = α_t x_t − σ_t o  (Salimans & Ho; the VP form of EDM's preconditioned
                            denoiser c_skip x + c_out F with c_skip = α, c_out = −σ: no gain anywhere)
``sample``                  x̂0 = o  (x0-prediction)
``flow``                    x̂0 = x_t − (t/T) o on the straight path x_t = (1 − t/T) x0 + (t/T) ε (DMDX ADP/ADM)
``...+ztsnr``               the same prediction on the teacher's schedule rescaled to zero terminal SNR
                            (Lin et al. 2024; ADD: "we set τ_n = 1000 and enforce zero-terminal SNR"); only
                            ``v_prediction`` and ``sample`` are defined there (α_T = 0)
==========================  ===================================================================================

The readout's schedule is also the path the student's *inputs* live on (ADD's x_s, DMDX's interpolation,
multi-step students' re-noising) and the one the exported sampler steps on: ``load_checkpoint`` installs
:meth:`Readout.schedule_for` as the base's schedule, so a checkpoint samples exactly as it was trained. The
teacher (real score, fake score, targets) always keeps the base's own schedule.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from addbench.errors import AddbenchError
from addbench.schedules import FlowSchedule, NoiseSchedule, VPSchedule

PREDICTIONS = ("base", "epsilon", "v_prediction", "sample", "flow")
ZTSNR = "+ztsnr"


@dataclass(frozen=True)
class Readout:
    """A parsed readout spec (module docstring): ``prediction`` and whether the schedule is rescaled."""

    prediction: str = "base"
    zero_terminal_snr: bool = False

    @classmethod
    def parse(cls, spec: str | None) -> "Readout":
        spec = "base" if spec in (None, "") else str(spec).strip()
        pred, ztsnr = (spec[: -len(ZTSNR)], True) if spec.endswith(ZTSNR) else (spec, False)
        if pred not in PREDICTIONS:
            raise AddbenchError(f"readout={spec!r}; use one of {', '.join(PREDICTIONS)}, optionally with "
                                f"{ZTSNR} (e.g. v_prediction{ZTSNR})")
        if ztsnr and pred not in ("v_prediction", "sample"):
            raise AddbenchError(f"readout={spec!r}: at zero terminal SNR α_T = 0, so only v_prediction{ZTSNR} "
                                f"and sample{ZTSNR} are defined")
        return cls(pred, ztsnr)

    @property
    def spec(self) -> str:
        return self.prediction + (ZTSNR if self.zero_terminal_snr else "")

    @property
    def solver(self) -> str:
        return "euler" if self.prediction == "flow" else "ddim"

    def schedule_for(self, teacher: NoiseSchedule) -> NoiseSchedule:
        """The student's schedule: the teacher's, re-read with this prediction (and rescaled for +ztsnr)."""
        if self.prediction == "base":
            return teacher
        if self.prediction == "flow":  # the straight path on the teacher's timestep range [0, T]
            return FlowSchedule(num_train_timesteps=int(round(teacher.T)))
        if isinstance(teacher, VPSchedule):
            return dataclasses.replace(teacher, prediction_type=self.prediction,
                                       zero_terminal_snr=teacher.zero_terminal_snr or self.zero_terminal_snr)
        if isinstance(teacher, FlowSchedule) and self.prediction == "sample" and not self.zero_terminal_snr:
            return dataclasses.replace(teacher, prediction_type="sample")
        raise AddbenchError(f"readout={self.spec!r} is not defined on a {type(teacher).__name__} teacher; "
                            "use base, sample or flow")

    @classmethod
    def from_checkpoint(cls, meta: dict) -> "Readout":
        """The readout a checkpoint was trained with: its config's ``readout`` (checkpoints written before
        readouts existed: DMDX's ``student_schedule = flow``, else the teacher's own, which is what they used)."""
        cfg = meta.get("config") or {}
        if cfg.get("readout"):
            return cls.parse(cfg["readout"])
        return cls.parse("flow" if cfg.get("student_schedule") == "flow" else "base")


def student_x0(base, schedule: NoiseSchedule, network, x_t: torch.Tensor, t, cond,
               guidance: float = 1.0) -> torch.Tensor:
    """x̂0 (fp32) of a student ``network`` read on its own ``schedule`` (CFG on the raw output when
    ``guidance != 1``, like the real score's)."""
    t = torch.as_tensor(t, dtype=torch.float32, device=x_t.device)
    out = base.predict_cfg(x_t, t, cond, guidance, network=network)
    return schedule.to_x0(out.float(), x_t.float(), t).float()
