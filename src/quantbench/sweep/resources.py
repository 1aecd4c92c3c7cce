"""What each SLURM job asks for: the ``slurm:`` section of an experiment file, declared once."""
from dataclasses import dataclass, field
from typing import Any


def _opt(default, help: str, **kw):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class SlurmResources:
    partition: str | None = _opt(None, "partition (queue) to submit to; the cluster's default if empty")
    account: str | None = _opt(None, "account to charge (sbatch --account)")
    qos: str | None = _opt(None, "quality of service (sbatch --qos)")
    time_min: int = _opt(60, "time limit of each run, minutes; a run past it is recorded as failed (timeout)")
    cpus_per_task: int = _opt(4, "cores of each run; latency is measured with exactly this many threads")
    mem_gb: float | None = _opt(None, "memory of each run, GB (sbatch --mem)")
    gpus_per_node: int = _opt(0, "GPUs of each run")
    constraint: str | None = _opt(None, "node features, e.g. 'a100' (sbatch --constraint)")
    exclusive: bool = _opt(False, "whole node per run: nothing else competes for memory bandwidth")
    array_parallelism: int = _opt(16, "runs of the job array that may run at the same time")
    setup: list[str] = _opt([], "shell lines run before each job, e.g. 'module load cuda/12.1'")
    additional: dict[str, Any] = _opt({}, "any other sbatch option, e.g. {reservation: mine}")
    poll_seconds: float = _opt(15.0, "how often the waiting driver looks for finished runs")

    def submitit_parameters(self, name: str) -> dict[str, Any]:
        params = {"name": name, "timeout_min": self.time_min, "cpus_per_task": self.cpus_per_task,
                  "gpus_per_node": self.gpus_per_node, "slurm_array_parallelism": self.array_parallelism,
                  "slurm_setup": list(self.setup), "slurm_additional_parameters": dict(self.additional)}
        if self.mem_gb:
            params["mem_gb"] = self.mem_gb
        if self.exclusive:
            params["slurm_exclusive"] = True
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(self, key):
                params[f"slurm_{key}"] = getattr(self, key)
        return params
