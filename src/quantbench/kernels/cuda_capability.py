"""The CUDA kernels quantbench runs and what each one needs: ``kernel_unavailable_reason`` says
whether a kernel kind can run on a GPU of a given compute capability with a given torchao, and if
not, why, in one line. Pure logic, unit-tested on the CPU. The weight-only layouts and modules
(tinygemm int4, int8 weight-only), shared with the torch-cpu runtime, are in ``weight_only.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

INSTALL_HINT = "pip install 'quantbench[cuda]'"
INT_MM_MIN_ROWS = 17
"""cuBLAS int8 GEMM (``torch._int_mm``) refuses fewer rows; torchao then falls back to fp32 matmul."""


@dataclass(frozen=True)
class KernelNeed:
    """What a kernel kind needs: a minimum compute capability and whether torchao provides it."""

    what: str
    min_capability: tuple[int, int]
    needs_torchao: bool


KERNELS: dict[str, KernelNeed] = {
    "bf16": KernelNeed("bf16 dense (cuBLAS, bf16 tensor cores)", (8, 0), False),
    "fp16": KernelNeed("fp16 dense (cuBLAS, fp16 tensor cores)", (7, 0), False),
    "int8-weight-only": KernelNeed("int8 weight-only (int8 weights cast to the compute dtype + cuBLAS)", (7, 0), False),
    "int8-dynamic": KernelNeed("int8 dynamic activation x int8 weight (torchao; torch._int_mm, int8 tensor cores)",
                               (7, 5), True),
    "int4-weight-only": KernelNeed("int4 weight-only tinygemm (aten._weight_int4pack_mm, bf16 mma.sync)", (8, 0),
                                   False),
    "float8-dynamic": KernelNeed("fp8 e4m3 dynamic activation x fp8 weight (torchao; torch._scaled_mm, "
                                 "fp8 tensor cores)", (8, 9), True),
}
DTYPE_KINDS = {"bfloat16": "bf16", "float16": "fp16"}
TORCHAO_MIN = (0, 10)


def sm(capability: tuple[int, int]) -> str:
    """(9, 0) -> 'sm90'."""
    return f"sm{capability[0]}{capability[1]}"


def kernel_unavailable_reason(kind: str, capability: tuple[int, int] | None, torchao_version: str | None,
                              dtype: str = "bfloat16") -> str | None:
    """None when kernel ``kind`` (a key of ``KERNELS``) can run on a GPU of ``capability`` with
    ``torchao_version`` installed (None: not installed) and the runtime computing in ``dtype``;
    else why not, in one line."""
    if kind not in KERNELS:
        raise ValueError(f"unknown CUDA kernel kind {kind!r}; known: {', '.join(KERNELS)}")
    need = KERNELS[kind]
    if capability is None:
        return "no CUDA GPU here"
    if tuple(capability) < need.min_capability:
        hint = " (use the cuda runtime's dtype=float16)" if kind == "bf16" else ""
        return f"{need.what} needs {sm(need.min_capability)}+, this GPU is {sm(capability)}{hint}"
    if kind == "int4-weight-only" and dtype != "bfloat16":
        return f"the int4 tinygemm kernel computes in bf16 only; this runtime computes in {dtype} (use dtype=bfloat16)"
    if dtype == "bfloat16" and tuple(capability) < KERNELS["bf16"].min_capability:
        return f"bf16 compute needs {sm(KERNELS['bf16'].min_capability)}+, this GPU is {sm(capability)} " \
               f"(use the cuda runtime's dtype=float16)"
    if need.needs_torchao:
        if torchao_version is None:
            return f"torchao not installed: {INSTALL_HINT}"
        if _version_tuple(torchao_version) < TORCHAO_MIN:
            return f"torchao {torchao_version} is too old (need >= {'.'.join(map(str, TORCHAO_MIN))}): {INSTALL_HINT}"
    return None


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("+")[0].split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


@dataclass(frozen=True)
class Target:
    """Where and how rows run: device, compute dtype, GPU capability and the torchao installed."""

    device: torch.device
    dtype: torch.dtype
    capability: tuple[int, int] | None
    torchao: str | None
    gpu: str
    compile: bool = False

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    @property
    def dense_kind(self) -> str:
        return DTYPE_KINDS[self.dtype_name]

    def reason(self, kind: str) -> str | None:
        return kernel_unavailable_reason(kind, self.capability, self.torchao, self.dtype_name)

    def details(self) -> dict:
        return {"gpu": self.gpu, "capability": sm(self.capability) if self.capability else None,
                "torch": torch.__version__, "torch_cuda": torch.version.cuda, "torchao": self.torchao,
                "dtype": self.dtype_name, "compile": self.compile}


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work (nothing on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
