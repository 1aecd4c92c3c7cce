"""Keep the deprecation chatter of torch's quantization APIs away from the user.

quantbench chooses which real int8 kernels to use per platform (see docs/kernels.md);
the warnings that `torch.ao.quantization` and quantized dtypes are deprecated are about
that choice, not about the user's model, so they are silenced where we call those APIs.
"""
import contextlib
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
