"""``quantbench runtimes``: every runtime, whether it can run here, what executes in it, and why not."""


def add_runtimes_command(sub) -> None:
    sub.add_parser("runtimes", help="list runtimes: available here or why not").set_defaults(
        func=lambda args: list_runtimes())


def list_runtimes() -> int:
    """One line per runtime; the cuda line names the GPU and, per kernel, why it cannot run
    (compute capability too low, torchao missing)."""
    from ..runtimes import RUNTIMES

    for name in RUNTIMES:
        runtime = RUNTIMES.get(name)()
        reason = runtime.unavailable_reason()
        print(f"{name}: " + (f"not available here: {reason}" if reason else f"available; {_describe(runtime)}"))
    return 0


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
