"""``quantbench runtimes``: every runtime, whether it can run here, what executes in it, and why not."""

# CUDA kernels quantbench would use and the compute capability they need (diagnosis only).
CUDA_KERNELS = (("int8 dynamic / weight-only (torchao)", (8, 0)), ("int4 weight-only (torchao tinygemm)", (8, 0)),
                ("fp8 (torchao float8)", (8, 9)))


def add_runtimes_command(sub) -> None:
    sub.add_parser("runtimes", help="list runtimes: available here or why not").set_defaults(
        func=lambda args: list_runtimes())


def list_runtimes() -> int:
    from ..runtimes import RUNTIMES

    for name in RUNTIMES:
        runtime = RUNTIMES.get(name)()
        reason = runtime.unavailable_reason()
        print(f"{name}: " + (f"not available here: {reason}" if reason else f"available; {_describe(runtime)}"))
    print(f"cuda: {cuda_diagnosis()}")
    return 0


def cuda_diagnosis() -> str:
    """Whether CUDA kernels could run here: the torch build, the GPUs and their compute capability."""
    import torch

    if torch.version.cuda is None:
        return f"not available here: this torch build ({torch.__version__}) has no CUDA support"
    if not torch.cuda.is_available():
        return f"not available here: torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU"
    parts = []
    for i in range(torch.cuda.device_count()):
        capability = torch.cuda.get_device_capability(i)
        lacking = [kernel for kernel, need in CUDA_KERNELS if capability < need]
        sm = f"sm{capability[0]}{capability[1]}"
        parts.append(f"{torch.cuda.get_device_name(i)} ({sm})"
                     + (f", compute capability too low for: {', '.join(lacking)}" if lacking else ""))
    return "GPU present, no CUDA runtime in quantbench yet: " + "; ".join(parts)


def _describe(runtime) -> str:
    import torch

    from ..runtimes import TorchCPU

    describe = getattr(runtime, "describe", None)
    if describe is not None:
        return describe()
    if isinstance(runtime, TorchCPU):
        int8 = runtime.int8_unavailable_reason()
        engine = f"int8 engine '{runtime.engine}' ({runtime.kernel('int8 linear/conv')})" if not int8 else \
            f"no int8 engine: {int8}"
        return f"torch {torch.__version__}, fp32 as frozen TorchScript; {engine}"
    return ""
