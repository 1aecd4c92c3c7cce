"""Keep the deprecation chatter of torch's quantization APIs away from the user.

quantbench chooses which real int8 kernels to use per platform (see docs/kernels.md);
the warnings that `torch.ao.quantization` and quantized dtypes are deprecated are about
that choice, not about the user's model, so they are silenced where we call those APIs.
"""
import contextlib
import importlib.util
import logging
import warnings

_SILENCED = (
    r"torch\.ao\.quantization is deprecated",
    r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
    r"Please use quant_min and quant_max",
    r"must run observer before calling calculate_qparams",
    r".*TorchScript.*deprecated",
    r"`torch.jit.*` is deprecated",
    r"Converting a tensor to a Python",
    r".*quantized.*deprecated",
    r"TypedStorage is deprecated",
)


@contextlib.contextmanager
def quiet_torch_quantization():
    with warnings.catch_warnings():
        for pattern in _SILENCED:
            warnings.filterwarnings("ignore", message=pattern)
        yield


@contextlib.contextmanager
def quiet_loggers(*names: str):
    """The loggers ``names`` print errors only, and no warning is shown, inside the block."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


def quiet_torchao():
    """Importing and applying torchao logs about optional native libraries and torch.compile
    registrations; none of it is about the user's model."""
    return quiet_loggers("torchao", "torch.utils._pytree")


def import_torchao_quietly() -> None:
    """Import torchao, when installed, with its import-time log lines silenced: transformers imports
    it while loading any model when it is installed, and would let those lines reach the user."""
    if importlib.util.find_spec("torchao") is not None:
        with quiet_torchao():
            import torchao.quantization  # noqa: F401
            with contextlib.suppress(ImportError):  # transformers' torchao integration imports it later
                import torchao.prototype.mx_formats  # noqa: F401
