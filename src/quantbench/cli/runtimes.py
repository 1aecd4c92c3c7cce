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
        print(f"{name}: " + (f"not available here: {reason}" if reason else f"available; {runtime.describe()}"))
    return 0

