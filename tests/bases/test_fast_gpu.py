"""The CUDA-graph fast path on a GPU (tiny SDXL, bf16): runs only where CUDA is (the device machine, not CI)."""
import pytest
import torch

from addbench.bases.fast import FastOptions, StaticLoop, make_fast
from addbench.bases.loading import load_generator
from addbench.bases.sampling import denoise, initial_noise

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
P = ["a red cat", "a blue dog", "three green cubes"]
S = [5, 6, 7]


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_graph_equals_eager_and_reads_its_buffers(tiny_dir, guidance):
    gen = load_generator(str(tiny_dir("sdxl")), device="cuda", dtype="bf16", micro_batch=2,
                         sampler_overrides={"steps": 2, "guidance": guidance, "height": 64, "width": 64})
    eager = gen.generate(P, S)
    base, s = gen.base, gen.sampler
    noise = initial_noise(S[:2], base.latent_shape(64, 64)).cuda()
    ref = denoise(base, noise, base.encode_prompts(P[:2]), s)
    fast = make_fast(gen, FastOptions(fuse_qkv=True))
    out = fast.generate(P, S)
    loop = fast.loop()
    assert loop.graph is not None and loop.graph_scope == "text+network+vae", loop.graph_error
    assert (out.int() - eager.int()).abs().max() <= 8  # bf16, other conv layout
    loop.load(P[:2], S[:2])
    loop.out.fill_(0)
    loop.latents.fill_(float("nan"))  # poison: the replay must write both
    loop.run()
    rel = ((loop.latents.float() - ref).norm() / ref.norm()).item()
    assert rel < 2e-2, rel
    assert torch.equal(fast.generate(P, S), out)  # replays are deterministic
    assert not torch.equal(fast.generate(P[::-1], S), out)  # new prompts reach the graph
    assert torch.equal(torch.cat([fast.generate([p], [q]) for p, q in zip(P, S)]), out)


def test_part_graphs_run(tiny_dir):
    gen = load_generator(str(tiny_dir("sdxl")), device="cuda", dtype="bf16", micro_batch=1,
                         sampler_overrides={"steps": 2, "height": 64, "width": 64})
    loop = StaticLoop(gen.base, gen.sampler, 1, FastOptions()).build()
    parts = loop.part_runners()
    for fn in parts.values():
        fn()
    torch.cuda.synchronize()
    assert sorted(parts) == ["network_eval_0", "network_eval_1", "text_encode", "vae_decode"]


def test_text_streams_in_the_graph_equal_one_stream(tiny_dir):
    """The fork/join of the two SDXL text encoders is captured: replays equal the one-stream loop."""
    from addbench.bases.fast import encode_ids, tokenize

    gen = load_generator(str(tiny_dir("sdxl")), device="cuda", dtype="bf16", micro_batch=3,
                         sampler_overrides={"steps": 1, "height": 64, "width": 64})
    base = gen.base
    one = encode_ids(base, [i.cuda() for i in tokenize(base, P)])
    two = encode_ids(base, [i.cuda() for i in tokenize(base, P)], streams=True)
    torch.cuda.synchronize()
    assert torch.equal(one.hidden, two.hidden) and torch.equal(one.pooled, two.pooled)
    ref = make_fast(gen, FastOptions()).generate(P, S)
    fast = make_fast(gen, FastOptions(text_streams=True))
    loop = fast.loop()
    assert loop.graph_scope == "text+network+vae", loop.graph_error
    for _ in range(3):  # the side stream's output is read after the join on every replay
        loop.out.fill_(0)
        assert torch.equal(fast.generate(P, S), ref)
    assert not torch.equal(fast.generate(P[::-1], S), ref)
