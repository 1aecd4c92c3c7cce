"""Peak resident memory to load an artifact and run one batch, measured in a fresh process
so that nothing else this process allocated is counted."""
import json
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import json, resource, sys, torch, warnings
warnings.simplefilter("ignore")
path, shape, threads = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
if sys.argv[4] != "none": torch.backends.quantized.engine = sys.argv[4]
x = torch.randn(*shape)
torch.zeros(1) + 1
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
try:  # reset the high-water mark so that importing torch does not count
    open("/proc/self/clear_refs", "w").write("5")
    base, peak = status("VmRSS:"), lambda: status("VmHWM:")
except OSError:
    base, peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, None
m = torch.jit.load(path)
with torch.inference_mode():
    m(x)
top = peak() if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"baseline": base, "peak": top}))
"""


def peak_memory_bytes(artifact: Path, input_shape: list[int], threads: int, engine: str | None) -> int:
    """Peak RSS growth of a fresh process that loads ``artifact`` and runs one batch."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(artifact), json.dumps(input_shape), str(threads), engine or "none"],
        capture_output=True, text=True, timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed: {done.stderr.strip().splitlines()[-1:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["peak"] - out["baseline"]
