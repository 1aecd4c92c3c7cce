"""What a comparison run is: one dataclass, declared once, read by the CLI and by sweeps."""
import os
from dataclasses import dataclass, field


def spec_field(default, help: str, metavar: str | None = None):
    return field(default=default, metadata={"help": help, "metavar": metavar})




@dataclass
class CompareSpec:
    task: str = spec_field("tabular", "task: tabular, cnn, minilm (pretrained MiniLM embeddings), lm, embedding, "
                           "or your own 'path/to/file.py:build'", "NAME")
    dataset: str = spec_field("digits", "built-in table for the tabular task: digits, wine, breast_cancer", "NAME")
    data: str | None = spec_field(None, "your CSV file for the tabular task (use with --target)", "FILE.csv")
    target: str | None = spec_field(None, "label column of --data", "COLUMN")
    hidden: tuple[int, ...] = spec_field((512, 512), "hidden widths of the tabular MLP, e.g. 2048,2048", "W,W")
    model: str | None = spec_field(None, "Hugging Face model (local folder or hub name) for the lm and embedding tasks",
                                   "PATH")
    corpus: str = spec_field("stdlib-docs", "text for lm/embedding tasks: 'stdlib-docs' (offline), a text file "
                             "(embedding: one sentence per line) or 'wikitext2' (needs network)", "SOURCE")
    seq_len: int = spec_field(0, "lm segment length in tokens (0 = the model's context length)", "N")
    eval_samples: int = spec_field(0, "cap on evaluated segments/sentences for lm/embedding (0 = all)", "N")
    methods: str | None = spec_field(None, "methods with options, e.g. fp32,ptq-static:observer=minmax "
                                     "(default: the task's standard set; see 'quantbench methods')", "LIST")
    runtime: str = spec_field("torch-cpu", "where rows run: torch-cpu, onnxruntime, a comma list, or 'all' "
                              "(every runtime available here; see 'quantbench runtimes')", "NAME")
    ort_accuracy_level: int = spec_field(4, "onnxruntime MatMulNBits accuracy_level: 0 = fp32 compute, "
                                         "4 = int8 activations (faster on CPU, ~0.5% error)", "N")
    cuda_dtype: str = spec_field("bfloat16", "cuda runtime: the baseline's and activations' dtype, bfloat16 or "
                                 "float16 (float16 for GPUs before sm80, e.g. V100; int4 rows need bfloat16)", "DTYPE")
    cuda_compile: bool = spec_field(False, "cuda runtime: torch.compile every row (same mode for fp32 and quantized)")
    batch_sizes: tuple[int, ...] = spec_field((1, 256), "batch sizes to time", "B,B")
    prompt_tokens: int = spec_field(512, "lm task: prompt length of the prefill speed measurement, pp<N> (capped at "
                                    "the model's context minus --decode-tokens)", "N")
    decode_tokens: int = spec_field(128, "lm task: tokens generated greedily with the KV cache, no stop at EOS, "
                                    "for decode speed, tg<N> (0 = no prefill/decode measurement)", "N")
    decode_batch_sizes: tuple[int, ...] = spec_field((1, 8), "lm task: batch sizes of the prefill/decode "
                                                     "measurement", "B,B")
    decode_seconds: int = spec_field(10, "lm task: time budget of the prefill/decode measurement per batch size: "
                                       "no further generation starts after it (2 are always timed)", "S")
    threads: int = spec_field(0, "CPU threads for every measurement (0 = all cores this process may use)", "N")
    seed: int = spec_field(0, "seed of data split, training and calibration", "N")
    out: str | None = spec_field(None, "folder for results.json/csv/md, plot and artifacts", "DIR")
    export: str | None = spec_field(None, "write each low-bit row of a Hugging Face model as folders other tools load: "
                                    "DIR/<row>/gptq (transformers/GPTQModel) and DIR/<row>/compressed-tensors "
                                    "(vLLM); see docs/export.md", "DIR")
    lm_eval_tasks: str | None = spec_field(None, "lm task: also run these lm-evaluation-harness tasks (comma list, or "
                                           "a task YAML file) on each row's loaded model; metrics go into the row",
                                           "TASKS")
    lm_eval_limit: int = spec_field(0, "lm-eval: at most N examples per task (0 = all)", "N")
    cache_dir: str | None = spec_field(None, "where trained FP32 models are cached "
                                       "(default $QUANTBENCH_CACHE or ~/.cache/quantbench)", "DIR")
    memory: bool = spec_field(True, "measure peak memory (loads each artifact in a fresh process)")
    progress: bool = spec_field(True, "show progress bars")

    def resolved_threads(self) -> int:
        if self.threads > 0:
            return self.threads
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    def runtime_options(self) -> dict:
        """Constructor options of each runtime that this spec sets."""
        return {"onnxruntime": {"accuracy_level": self.ort_accuracy_level},
                "cuda": {"dtype": self.cuda_dtype, "compile": self.cuda_compile}}

    def task_options(self) -> dict:
        return {"dataset": self.dataset, "data": self.data, "target": self.target, "hidden": tuple(self.hidden),
                "seed": self.seed, "model": self.model, "corpus": self.corpus, "seq_len": self.seq_len,
                "eval_samples": self.eval_samples, "lm_eval_tasks": self.lm_eval_tasks,
                "lm_eval_limit": self.lm_eval_limit}
