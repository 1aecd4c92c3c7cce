"""What a comparison run is: one dataclass, declared once, read by the CLI and by sweeps."""
import os
from dataclasses import dataclass, field


def spec_field(default, help: str, metavar: str | None = None):
    return field(default=default, metadata={"help": help, "metavar": metavar})


DEFAULT_METHODS = "fp32,ptq-dynamic,ptq-static,qat"


@dataclass
class CompareSpec:
    task: str = spec_field("tabular", "task: 'tabular', 'cnn', or your own 'path/to/file.py:build'", "NAME")
    dataset: str = spec_field("digits", "built-in table for the tabular task: digits, wine, breast_cancer", "NAME")
    data: str | None = spec_field(None, "your CSV file for the tabular task (use with --target)", "FILE.csv")
    target: str | None = spec_field(None, "label column of --data", "COLUMN")
    hidden: tuple[int, ...] = spec_field((512, 512), "hidden widths of the tabular MLP, e.g. 2048,2048", "W,W")
    methods: str = spec_field(DEFAULT_METHODS, "methods with options, e.g. fp32,ptq-static:observer=minmax "
                              "(see 'quantbench methods')", "LIST")
    batch_sizes: tuple[int, ...] = spec_field((1, 256), "batch sizes to time", "B,B")
    threads: int = spec_field(0, "CPU threads for every measurement (0 = all cores this process may use)", "N")
    seed: int = spec_field(0, "seed of data split, training and calibration", "N")
    out: str | None = spec_field(None, "folder for results.json/csv/md, plot and artifacts", "DIR")
    cache_dir: str | None = spec_field(None, "where trained FP32 models are cached "
                                       "(default $QUANTBENCH_CACHE or ~/.cache/quantbench)", "DIR")
    memory: bool = spec_field(True, "measure peak memory (loads each artifact in a fresh process)")
    progress: bool = spec_field(True, "show progress bars")

    def resolved_threads(self) -> int:
        if self.threads > 0:
            return self.threads
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    def task_options(self) -> dict:
        return {"dataset": self.dataset, "data": self.data, "target": self.target,
                "hidden": tuple(self.hidden), "seed": self.seed}
