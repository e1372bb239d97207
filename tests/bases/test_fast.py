"""The fast path (addbench.bases.fast) computes what the eager path computes (CPU, tiny SDXL / SD1.5)."""
import pytest
import torch

from addbench.bases.fast import FastGenerator, FastOptions, StaticLoop, encode_ids, make_fast, prepare_modules, tokenize
from addbench.bases.interface import Sampler
from addbench.bases.loading import load_base, load_generator
from addbench.bases.sampling import denoise, initial_noise
from addbench.errors import AddbenchError

P = ["a red cat", "a blue dog", "three green cubes"]
S = [5, 6, 7]


def _gen(tiny_dir, family="sdxl", **sampler):
    over = {"steps": 2, "guidance": 1.0, "height": 32, "width": 32, **sampler}
    return load_generator(str(tiny_dir(family)), device="cpu", micro_batch=2, sampler_overrides=over)


@pytest.mark.parametrize("family,mask", [("sdxl", False), ("sd15", False), ("sd15", True)])
def test_encode_ids_is_encode_prompts(tiny_dir, family, mask):
    base = load_base(str(tiny_dir(family)), device="cpu")
    base.text_encoder.config.use_attention_mask = mask
    a = base.encode_prompts(P)
    b = encode_ids(base, tokenize(base, P))
    assert torch.equal(a.hidden, b.hidden)
    assert (a.pooled is None and b.pooled is None) or torch.equal(a.pooled, b.pooled)


@pytest.mark.parametrize("steps,guidance,fuse", [(1, 1.0, False), (2, 1.0, True), (2, 3.0, False)])
def test_fast_images_equal_eager(tiny_dir, steps, guidance, fuse):
    gen = _gen(tiny_dir, steps=steps, guidance=guidance)
    eager = gen.generate(P, S)
    fast = make_fast(gen, FastOptions(fuse_qkv=fuse))
    assert isinstance(fast, FastGenerator) and fast.effective_micro_batch == 2 and fast.name == gen.name + "+fast"
    assert fast.model_hash != gen.model_hash and len(fast.model_hash) == 64  # eval runs never mix the two
    assert fast.describe()["fast"]["fuse_qkv"] is fuse and fast.describe()["dtype"] == "float32"
    out = fast.generate(P, S)
    assert out.dtype == torch.uint8 and out.shape == eager.shape == (3, 3, 32, 32)
    assert (out.int() - eager.int()).abs().max() <= 1  # fp32: only conv layout / fused-matmul rounding differs
    assert gen.base.network.conv_in.weight.is_contiguous(memory_format=torch.channels_last)


def test_fast_latents_equal_eager_denoise(tiny_dir):
    gen = _gen(tiny_dir, steps=2, guidance=2.0)
    base, s = gen.base, gen.sampler
    noise = initial_noise(S[:2], base.latent_shape(32, 32))
    ref = denoise(base, noise, base.encode_prompts(P[:2]), s)
    loop = StaticLoop(base, s, 2, FastOptions()).build()
    loop.load(P[:2], S[:2])
    loop.run()
    assert torch.allclose(loop.latents, ref, rtol=1e-5, atol=1e-5)
    assert not torch.equal(loop.latents[0], loop.latents[1])


def test_fast_is_per_sample_whatever_the_batch(tiny_dir):
    fast = make_fast(_gen(tiny_dir), micro_batch=2)
    batch3 = fast.generate(P, S)
    singles = torch.cat([fast.generate([p], [s]) for p, s in zip(P, S)])
    assert torch.equal(batch3, singles)
    assert not torch.equal(batch3[0], batch3[1])
    assert fast.generate([], []).shape == (0, 3, 32, 32)


def test_loop_cached_per_sampler_and_parts_run(tiny_dir):
    fast = make_fast(_gen(tiny_dir))
    one = Sampler(steps=1, height=32, width=32)
    assert fast.loop(one) is fast.loop(one) and fast.loop(one) is not fast.loop()
    loop = fast.loop()
    parts = loop.part_runners()
    assert sorted(parts) == ["network_eval_0", "network_eval_1", "text_encode", "vae_decode"]
    img = parts["vae_decode"]()
    assert img.dtype == torch.uint8 and img.shape == (2, 3, 32, 32)
    assert parts["network_eval_1"]().shape == (2, 4, 16, 16)


def test_bad_inputs(tiny_dir):
    fast = make_fast(_gen(tiny_dir))
    with pytest.raises(AddbenchError, match="batch 2"):
        fast.loop().load(P, S)
    with pytest.raises(AddbenchError, match="one seed per prompt"):
        fast.generate(P, S[:1])
    with pytest.raises(AddbenchError, match="UNet bases"):
        FastGenerator(load_base(str(tiny_dir("sd3")), device="cpu"))
    with pytest.raises(AddbenchError, match="compile mode"):
        FastGenerator(fast.base, options=FastOptions(compile="fastest"))
    with pytest.raises(AddbenchError, match="unknown torch._inductor.config setting 'go_faster'"):
        FastGenerator(fast.base, options=FastOptions(compile="default", inductor=(("go_faster", True),)))


def test_options_label():
    assert FastOptions().label == "graph+channels_last"
    assert FastOptions(compile="default", fuse_qkv=True).label == "graph+compile(default)+channels_last+fused_qkv"
    assert FastOptions(compile="default", inductor=(("freezing", True),)).label == \
        "graph+compile(default,freezing=True)+channels_last"
    assert FastOptions(text_streams=True, cudnn_benchmark=True).label == "graph+channels_last+text_streams+cudnn_benchmark"


def test_text_streams_and_cudnn_benchmark_options(tiny_dir, monkeypatch):
    """On the CPU two streams are the sequential encoders (CUDA: test_fast_gpu); benchmark mode is switched on."""
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)  # restored after the test
    gen = _gen(tiny_dir, steps=1)
    eager = gen.generate(P, S)
    fast = make_fast(gen, FastOptions(text_streams=True, cudnn_benchmark=True))
    assert torch.backends.cudnn.benchmark is True
    assert torch.equal(fast.generate(P, S), eager)
    base = fast.base
    a, b = encode_ids(base, tokenize(base, P)), encode_ids(base, tokenize(base, P), streams=True)
    assert torch.equal(a.hidden, b.hidden) and torch.equal(a.pooled, b.pooled)


def test_inductor_settings_are_applied_before_the_lazy_compile(tiny_dir, monkeypatch):
    import torch._inductor.config as inductor_config

    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compiled.append((type(self).__name__, kw)))
    monkeypatch.setattr(inductor_config, "coordinate_descent_tuning", False)  # restored after the test
    monkeypatch.setattr(inductor_config, "conv_1x1_as_mm", False)
    base = load_base(str(tiny_dir("sdxl")), device="cpu")
    prepare_modules(base, FastOptions(compile="default", inductor=(("coordinate_descent_tuning", True),)))
    assert inductor_config.coordinate_descent_tuning is True and inductor_config.conv_1x1_as_mm is True
    assert [n for n, _ in compiled] == ["UNet2DConditionModel", "Decoder"] and compiled[0][1] == {"mode": "default"}


HOST_OPS = {"aten.lift_fresh.default", "aten.lift_fresh_copy.default", "aten._local_scalar_dense.default",
            "aten.nonzero.default", "aten.is_nonzero.default", "aten.equal.default"}


def test_loop_does_no_host_work(tiny_dir):
    """What the CUDA graph captures must not make tensors from host values or read device values back."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        seen = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.add(str(func))
            return func(*args, **(kwargs or {}))

    gen = _gen(tiny_dir, steps=2, guidance=2.0)
    loop = StaticLoop(gen.base, gen.sampler, 2, FastOptions())
    with Ops() as ops:
        loop.forward()
    assert "aten.convolution.default" in ops.seen and not ops.seen & HOST_OPS
    with Ops() as ops:
        torch.as_tensor(1.0) + torch.ones(1).sum().item()  # the check sees host work when there is some
    assert {"aten.lift_fresh.default", "aten._local_scalar_dense.default"} <= ops.seen
