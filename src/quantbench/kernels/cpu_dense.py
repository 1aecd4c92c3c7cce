"""torch's dense bf16 path on a CPU: which instructions this host gives it, read from the CPU's flags
(``/proc/cpuinfo``), never assumed. Pure logic, unit-tested with made-up flag sets.

torch multiplies bf16 matrices with oneDNN where the CPU has AVX-512 (x86) or Arm's BF16 extension:
natively with AMX-BF16 tiles or AVX512-BF16 dot products, else converting to fp32 inside oneDNN. With
AVX2 only, ATen's own fallback GEMM converts every element to fp32 and back: slower than fp32."""
from dataclasses import dataclass


@dataclass(frozen=True)
class DenseBf16Path:
    """``kernel``: the row's kernel string; ``native``: the CPU multiplies bf16 itself."""

    kernel: str
    native: bool


def bf16_cpu_path(flags: set[str] | frozenset[str], machine: str = "x86_64") -> DenseBf16Path:
    """What runs torch's dense bf16 matmuls on a CPU with ``flags`` (Linux's names: amx_bf16,
    avx512_bf16, avx512f, avx2; on Arm the ``Features`` line's bf16) and architecture ``machine``."""
    if machine.lower() in ("aarch64", "arm64"):
        if "bf16" in flags:
            return DenseBf16Path("torch bf16 dense (oneDNN/ACL, Arm BF16)", True)
        return DenseBf16Path("no native bf16 on this CPU (Arm without BF16): emulated, expect slower than fp32", False)
    if "amx_bf16" in flags:
        return DenseBf16Path("torch bf16 dense (oneDNN, AMX-BF16)", True)
    if "avx512_bf16" in flags:
        return DenseBf16Path("torch bf16 dense (oneDNN, AVX512-BF16)", True)
    if "avx512f" in flags:
        return DenseBf16Path("no native bf16 on this CPU (AVX-512 without BF16): oneDNN converts to fp32, "
                             "expect no faster than fp32", False)
    if "avx2" in flags:
        return DenseBf16Path("no native bf16 on this CPU (AVX2 only): emulated, expect slower than fp32", False)
    return DenseBf16Path("no native bf16 on this CPU (no AVX2 found): emulated, expect slower than fp32", False)
