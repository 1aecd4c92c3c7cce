"""torch.ao's int8 CPU engines: which one this machine uses ('x86' = fbgemm/oneDNN on x86-64,
'qnnpack' on ARM), and how rows name it. torch.ao's quantizers need it to convert a model, and
the torch-cpu runtime to run one."""
import platform

import torch

_PREFERENCE = {"x86_64": ("x86", "fbgemm"), "amd64": ("x86", "fbgemm"),
               "aarch64": ("qnnpack",), "arm64": ("qnnpack",)}
_ENGINE_KERNELS = {"x86": "x86 engine (fbgemm/oneDNN)", "fbgemm": "fbgemm", "qnnpack": "qnnpack", "onednn": "oneDNN"}


def choose_int8_engine() -> str | None:
    supported = torch.backends.quantized.supported_engines
    wanted = _PREFERENCE.get(platform.machine().lower(), ("x86", "fbgemm", "qnnpack"))
    return next((e for e in wanted if e in supported), None)


def int8_engine_unavailable_reason(engine: str | None) -> str | None:
    if engine is None:
        return f"no int8 engine for {platform.machine()} in this torch build " \
               f"(supported: {torch.backends.quantized.supported_engines})"
    return None


def activate_int8_engine(engine: str | None) -> None:
    if engine:
        torch.backends.quantized.engine = engine


def engine_kernel(engine: str | None, op: str) -> str:
    """Name of what runs ``op`` (e.g. 'int8 dynamic linear') on ``engine``."""
    return f"torch {_ENGINE_KERNELS.get(engine, engine)} {op}"
