"""The CogVideoX base adapter on tiny pipelines: equals diffusers' CogVideoXPipeline (DDIM, CFG; 2B- and
5B-like), loads through ``from_pretrained``, round-trips as a checkpoint, fails in one line on a wrong
directory; the full-size architectures have CogVideoX-2b / -5b's parameter counts."""
import json
import shutil

import pytest
import torch

from addbench.bases.checkpoint import save_checkpoint
from addbench.bases.cogvideox import ARCHS, CogVideoXBase, architecture, build_component
from addbench.bases.interface import Sampler
from addbench.bases.loading import load_generator
from addbench.bases.sampling import denoise, initial_noise
from addbench.errors import AddbenchError

PROMPTS = ["a red cube", "two blue spheres"]
SEEDS = [3, 11]


@pytest.mark.parametrize("kind,guidance", [("2b", 6.0), ("5b", 4.5)])
def test_sampling_equals_the_diffusers_pipeline(cog_dir, kind, guidance):
    from diffusers import CogVideoXPipeline

    path = cog_dir(kind)
    gen = load_generator(str(path), device="cpu", sampler_overrides={"steps": 4, "guidance": guidance})
    base = gen.base
    assert isinstance(base, CogVideoXBase) and base.video and base.schedule.prediction_type == "v_prediction"
    assert (gen.sampler.height, gen.sampler.width, gen.sampler.frames) == (32, 32, 9)  # the transformer's sample size
    assert gen.fps == 8
    shape = base.latent_shape(32, 32, 9)
    assert shape == (3, 4, 4, 4)  # (F', C, h, w): 9 frames -> 3 latent frames, f8
    z = initial_noise(SEEDS, shape)
    with torch.no_grad():
        lat = denoise(base, z, base.encode_prompts(PROMPTS), gen.sampler)
        ours = base.decode(lat)
    pipe = CogVideoXPipeline.from_pretrained(str(path))
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(PROMPTS, num_inference_steps=4, guidance_scale=guidance, latents=z.clone(), height=32, width=32,
                  num_frames=9, max_sequence_length=16, output_type="latent").frames
    assert (lat - theirs).abs().max() < 2e-4
    with torch.no_grad():
        ref = pipe.decode_latents(theirs)  # (N, 3, F, H, W)
    assert ours.shape == (2, 9, 3, 32, 32) and (ours - ref.permute(0, 2, 1, 3, 4)).abs().max() < 2e-4
    assert ref.std() > 0.01  # not a trivially constant clip
    clips = gen.generate(PROMPTS, SEEDS)
    assert clips.dtype == torch.uint8 and clips.shape == (2, 9, 3, 32, 32)
    pt = pipe.video_processor.postprocess_video(ref, output_type="pt")  # (N, F, 3, H, W) in [0, 1]
    assert (clips.float() - pt * 255).abs().max() <= 0.6  # diffusers' pixels, rounded


def test_generation_is_per_sample_and_frames_are_a_sampler_option(cog_dir):
    gen = load_generator(str(cog_dir("2b")), device="cpu", sampler_overrides={"steps": 2})
    both = gen.generate(PROMPTS, SEEDS)
    assert torch.equal(both[1:], gen.generate(PROMPTS[1:], SEEDS[1:]))
    longer = gen.generate(PROMPTS[:1], SEEDS[:1], Sampler(steps=1, frames=17, height=32, width=48))
    assert longer.shape == (1, 17, 3, 32, 48)
    assert gen.generate([], []).shape == (0, 9, 3, 32, 32)
    assert "frames" not in Sampler().to_dict() and Sampler.from_dict(Sampler(frames=49).to_dict()).frames == 49


def test_checkpoint_roundtrip_keeps_the_student_and_its_video_sampler(cog_dir, cog_base, tmp_path):
    base = cog_base("5b")
    student = base.copy_network()
    with torch.no_grad():
        student.proj_out.bias.add_(0.5)
    sampler = Sampler(steps=2, timesteps=(999.0, 499.0), guidance=1.0, height=32, width=32, frames=1)
    save_checkpoint(tmp_path / "ckpt", str(cog_dir("5b")), student, sampler, "test", {})
    gen = load_generator(str(tmp_path / "ckpt"), device="cpu")
    assert gen.sampler == sampler and gen.base.video
    assert torch.equal(gen.base.network.proj_out.bias, student.proj_out.bias)
    out = gen.generate(PROMPTS[:1], SEEDS[:1])
    assert out.dtype == torch.uint8 and out.shape == (1, 1, 3, 32, 32)


def _one_line_error(path, match):
    with pytest.raises(AddbenchError, match=match) as e:
        load_generator(str(path), device="cpu")
    assert "\n" not in str(e.value)


def test_wrong_directories_give_one_line_errors(cog_dir, tmp_path):
    src = cog_dir("2b")
    no_vae = tmp_path / "no_vae"
    shutil.copytree(src, no_vae)
    shutil.rmtree(no_vae / "vae")
    _one_line_error(no_vae, "vae")
    i2v = tmp_path / "i2v"
    shutil.copytree(src, i2v)
    index = json.loads((i2v / "model_index.json").read_text())
    (i2v / "model_index.json").write_text(json.dumps({**index, "_class_name": "CogVideoXImageToVideoPipeline"}))
    _one_line_error(i2v, "unsupported pipeline 'CogVideoXImageToVideoPipeline'")
    v15 = tmp_path / "v15"
    shutil.copytree(src, v15)
    from diffusers import CogVideoXTransformer3DModel

    cfg = CogVideoXTransformer3DModel.load_config(str(src / "transformer"))
    CogVideoXTransformer3DModel.from_config({**cfg, "patch_size_t": 2}).save_pretrained(str(v15 / "transformer"))
    _one_line_error(v15, "CogVideoX 1.5")
    _one_line_error("cogvideox", "needs a pipeline directory")  # the family name alone has no weights


def test_latent_shape_checks_sizes(cog_base):
    base = cog_base("2b")
    assert base.latent_shape(32, 48, 1) == (1, 4, 4, 6) and base.latent_shape(480, 720, 49) == (13, 4, 60, 90)
    for h, w, f in ((24, 32, 9), (32, 32, 8), (32, 32, 5)):
        with pytest.raises(AddbenchError):
            base.latent_shape(h, w, f)


def test_taps_are_every_third_block_as_frame_maps(cog_base):
    from addbench.discriminators import NetworkTaps

    base = cog_base("5b")
    assert base.feature_taps == ["transformer_blocks.2:0", "transformer_blocks.5:0"]
    taps = NetworkTaps(base.network, base.feature_taps, to_map=base.feature_map,
                       forward_fn=lambda net, x, t, c: base.predict(x, t, c, network=net))
    x = torch.randn(2, 3, 4, 4, 4)
    with torch.no_grad():
        feats = taps(x, 500.0, base.encode_prompts(PROMPTS))
    taps.remove()
    assert [tuple(f.shape) for f in feats] == [(2, 32, 3, 2, 2)] * 2  # (N, C, F', h/2, w/2)
    # the token order is the patch embedding's: frame-major, then rows, then columns (5B: no position table)
    net = base.network
    with torch.no_grad():
        tokens = net.patch_embed(torch.zeros(2, 16, 32), x)[:, 16:]
        per_frame = net.patch_embed.proj(x.flatten(0, 1))  # (N F', D, h/2, w/2)
    assert torch.allclose(base.feature_map(tokens, x), per_frame.unflatten(0, (2, 3)).transpose(1, 2), atol=1e-6)


@pytest.mark.parametrize("arch,transformer,heads", [("cogvideox-2b", 1_693_783_872, 10), ("cogvideox-5b", 5_570_283_072, 14)])
def test_full_size_architectures_have_the_released_parameter_counts(arch, transformer, heads):
    spec = architecture(arch)
    assert spec["transformer"]["params"] == transformer
    with torch.device("meta"):
        nets = {k: build_component(spec[k]) for k in ("transformer", "vae", "text_encoder")}
    for k, net in nets.items():
        assert sum(p.numel() for p in net.parameters()) == spec[k]["params"], k
    taps = CogVideoXBase.feature_taps.fget(type("B", (), {"network": nets["transformer"]})())
    assert len(taps) == heads  # DMDX appendix B: 10 heads for 2B, 14 for 5B
    assert nets["transformer"].config.use_rotary_positional_embeddings == (arch == "cogvideox-5b")
    assert set(ARCHS) == {"cogvideox-2b", "cogvideox-5b"}
