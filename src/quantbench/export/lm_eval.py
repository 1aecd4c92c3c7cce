"""lm-evaluation-harness on a row's loaded model: the object the row's quality and latency are measured on,
wrapped in lm-eval's ``HFLM``. Tasks are lm-eval task names (hub datasets: network needed) or local task
YAML files (e.g. over a JSONL file: offline). Each task's metrics come back with their stderr."""
import math
from pathlib import Path

import yaml

from ..errors import UserError
from ..quiet import quiet_loggers


def run_lm_eval(model, tokenizer, tasks: str, limit: int = 0, batch_size: int = 1) -> dict:
    """{task: {metric: {"value", "stderr"}}, plus "_n_samples" and "_lm_eval_version"} of lm-eval's
    ``tasks`` (comma list of names and/or YAML files) run on ``model`` (a transformers PreTrainedModel)."""
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise UserError("--lm-eval-tasks needs lm-eval: pip install 'quantbench[lm-eval]'") from None
    names, include = task_names(tasks)
    with quiet_loggers("lm_eval"):  # that a model object is passed, not a name: about this call, not the model
        wrapped = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(model.device),
                       prefix_token_id=_prefix_token(tokenizer))
        out = lm_eval.simple_evaluate(model=wrapped, tasks=names, limit=limit or None, log_samples=False,
                                      task_manager=TaskManager(include_path=include or None), bootstrap_iters=1000,
                                      verbosity="ERROR")
    metrics = {task: metrics_with_stderr(values) for task, values in out["results"].items()}
    return metrics | {"_n_samples": out.get("n-samples", {}), "_lm_eval_version": lm_eval.__version__}


def _prefix_token(tokenizer) -> int | None:
    """None (lm-eval's own choice: end or start of text) when the tokenizer has those tokens; else its
    first other special token (a tokenizer borrowed from an encoder has [CLS] and [SEP] only)."""
    if tokenizer.eos_token_id is not None or tokenizer.bos_token_id is not None:
        return None
    return next((t for t in (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id) if t is not None),
                None)


def task_names(tasks: str) -> tuple[list[str], list[str]]:
    """(task names, folders to include) of a comma list of lm-eval task names and task YAML files."""
    names, include = [], []
    for entry in (t.strip() for t in tasks.split(",") if t.strip()):
        path = Path(entry)
        if path.suffix in (".yaml", ".yml"):
            if not path.is_file():
                raise UserError(f"lm-eval task file not found: {entry}")
            names.append(yaml.safe_load(path.read_text())["task"])
            include.append(str(path.resolve().parent))
        else:
            names.append(entry)
    return names, sorted(set(include))


def metrics_with_stderr(values: dict) -> dict:
    """lm-eval's {"acc,none": v, "acc_stderr,none": s, "alias": ...} as {"acc": {"value": v, "stderr": s}}
    (the filter name is kept when it is not 'none'; an stderr lm-eval could not compute is None)."""
    out = {}
    for key, value in values.items():
        metric, _, filter_name = key.partition(",")
        if not filter_name or metric.endswith("_stderr") or not isinstance(value, (int, float)):
            continue
        stderr = values.get(f"{metric}_stderr,{filter_name}")
        name = metric if filter_name == "none" else f"{metric},{filter_name}"
        out[name] = {"value": value, "stderr": stderr if isinstance(stderr, (int, float)) and math.isfinite(stderr)
                     else None}
    return out
