"""addbench.eval.profiling: the kernel table of one call (CPU operators here; CUDA kernels on a GPU)."""
import torch

from addbench.eval.profiling import profile_kernels


def test_profile_kernels_counts_and_ranks_what_ran():
    a, b = torch.randn(256, 256), torch.randn(256, 256)

    def fn():
        for _ in range(3):
            torch.mm(a, b)
        torch.relu(a)

    t = profile_kernels(fn, top=100, cuda=False)
    rows = {r["name"]: r for r in t["top"]}
    assert rows["aten::mm"]["calls"] == 3 and rows["aten::relu"]["calls"] == 1
    assert t["distinct"] == len(t["top"]) and t["kernels"] == sum(r["calls"] for r in t["top"]) >= 4
    assert t["top"][0]["name"] == "aten::mm"  # three 256^3 products outweigh one relu
    assert abs(sum(r["share"] for r in t["top"]) - 1.0) < 1e-6
    assert abs(t["busy_ms"] - sum(r["self_ms"] for r in t["top"])) < 1e-6 and t["busy_ms"] > 0
    assert t["by_kind"]["matmul"] == rows["aten::mm"]["self_ms"] and rows["aten::relu"]["kind"] == "elementwise"
    one = profile_kernels(fn, top=1, cuda=False)
    assert len(one["top"]) == 1 and one["distinct"] == t["distinct"] and one["top"][0]["name"] == "aten::mm"


def test_kernel_kinds_of_h200_kernel_names():
    """Names from an H200 profile of the SDXL fast path (cuDNN SDPA names contain "fprop"; inductor's fused kernels
    are named after the convolution they follow)."""
    from addbench.eval.profiling import kernel_kind

    assert kernel_kind("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x64") == "attention"
    assert kernel_kind("fmha_cutlassF_bf16_aligned_32x128_gmem_sm80(PyTorchMemEffAttention::AttentionKernel") == "attention"
    assert kernel_kind("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64") == "conv"
    assert kernel_kind("nvjet_sm90_tst_56x64_64x14_4x2_h_bz_bias_TNN") == "matmul"
    assert kernel_kind("void cublasLt::splitKreduce_kernel<32, 16, int, float, __nv_bfloat16>") == "matmul"
    assert kernel_kind("triton_per_fused_add_clone_convolution_div_native_group_norm_silu_51") == "norm"
    assert kernel_kind("triton_poi_fused_gelu_mul_split_view_57") == "elementwise"
    assert kernel_kind("void cudnn::engines_precompiled::nchwToNhwcKernel<__nv_bfloat16>") == "layout"
    assert kernel_kind("Memset (Device)") == "copy"
    assert kernel_kind("aten::convolution") == "conv" and kernel_kind("aten::addmm") == "matmul"
