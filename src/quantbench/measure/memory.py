"""Peak resident memory to load an artifact and run one batch, measured in a fresh process
so that nothing else this process allocated is counted. Each runtime supplies the few lines
that load its artifact and run it (``load_and_run``)."""
import json
import subprocess
import sys
from pathlib import Path

_PROBE = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
path, shape, threads, option = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
{imports}
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
try:  # reset the high-water mark so that the imports above do not count
    open("/proc/self/clear_refs", "w").write("5")
    base = status("VmRSS:")
except OSError:  # no resettable high-water mark (not Linux): the imports' peak would hide the load's
    print(json.dumps({{"baseline": None, "peak": None}}))
    sys.exit(0)
{load_and_run}
print(json.dumps({{"baseline": base, "peak": status("VmHWM:")}}))
"""

TORCHSCRIPT_IMPORTS = """import torch
torch.set_num_threads(threads)
if option != "none": torch.backends.quantized.engine = option
x = torch.randn(*shape)
torch.zeros(1) + 1"""

TORCHSCRIPT_LOAD_AND_RUN = """m = torch.jit.load(path)
with torch.inference_mode():
    m(x)"""


def peak_memory_bytes(artifact: Path, input_shape: list[int] | dict, threads: int, option: str | None = None,
                      imports: str = TORCHSCRIPT_IMPORTS, load_and_run: str = TORCHSCRIPT_LOAD_AND_RUN) -> int | None:
    """Peak RSS growth of a fresh process that loads ``artifact`` and runs one batch; None where the
    resident high-water mark cannot be reset after the imports (Linux's /proc/self/clear_refs).
    ``input_shape`` (any JSON value) reaches the probe as ``shape``: a tensor's shape, or what a
    runtime's ``imports`` needs to build its inputs. ``imports`` runs before the baseline is taken
    (it may define ``x``); ``load_and_run`` after."""
    code = _PROBE.format(imports=imports, load_and_run=load_and_run)
    done = subprocess.run(
        [sys.executable, "-c", code, str(artifact), json.dumps(input_shape), str(threads), option or "none"],
        capture_output=True, text=True, timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed: {done.stderr.strip().splitlines()[-1:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return None if out["peak"] is None else out["peak"] - out["baseline"]
