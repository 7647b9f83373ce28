"""``python -m rlvr train|eval|sft SPEC.yaml [--run-dir DIR]``, ``tiny-model OUT_DIR``, ``schema KIND``.

Owns the command line only: parse, validate the spec once, wire the JSONL and progress-bar
callbacks, call the library, print where the results are. Runs in-process: no queue. The
service's commands (`submit`, `status`, `logs`, `cancel`, `resume`, `clone`, `download`)
are `rlvr.client_cli`'s, added to the same parser.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from pydantic import ValidationError
from tqdm import tqdm

from rlvr import client_cli
from rlvr.callbacks import Callback, CallbackList, JsonlCallback
from rlvr.spec import EvalSpec, SFTSpec, TrainSpec, load_spec
from rlvr.verifier import verifier_for

SPECS = {"train": TrainSpec, "eval": EvalSpec, "sft": SFTSpec}


class ProgressBar(Callback):
    """A tqdm bar over optimizer steps, showing the latest reward and pass rate."""

    def __init__(self, total: int, kind: str):
        self.bar = tqdm(total=total, desc=kind, unit="step", dynamic_ncols=True)

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if step > self.bar.n:
            self.bar.update(step - self.bar.n)
        shown = {
            name: metrics[name]
            for name in ("reward", "pass_rate", "loss", "eval/greedy/pass_rate")
            if name in metrics
        }
        if shown:
            self.bar.set_postfix({name: f"{value:.3f}" for name, value in shown.items()})

    def close(self) -> None:
        self.bar.close()


def _run_job(kind: str, spec_path: str, run_dir: str | None) -> int:
    try:
        spec = load_spec(spec_path, SPECS[kind])
    except ValidationError as error:
        print(f"{spec_path}: invalid {kind} spec\n{error}", file=sys.stderr)
        return 2
    out = Path(run_dir or Path("runs") / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}")
    total = {
        "train": lambda: spec.stopping.max_steps,
        "sft": lambda: spec.max_steps,
        "eval": lambda: 1,
    }[kind]()
    # an in-process nsjail pool, for code tasks and python rewards only
    verify = verifier_for(spec.task, spec.verifier, getattr(spec, "rewards", ()))
    progress = ProgressBar(total, kind)
    tracking = _mlflow_run(spec, out)  # here the user is the operator: the spec's URI as it is
    callback = CallbackList([JsonlCallback(out), progress, *([tracking] if tracking else [])])
    status, summary = "failed", {}
    try:
        if kind == "train":
            from rlvr.trainer import train

            result = train(spec, out, callback, verify)
            summary = {
                "steps": result.steps,
                "stop_reason": result.stop_reason,
                "final": str(result.final_dir),
            }
        elif kind == "sft":
            from rlvr.sft import run_sft

            sft = run_sft(spec, out, callback, verify)
            summary = {"final": str(sft.final_dir), **sft.metrics}
        else:
            from rlvr.evaluate import run_eval

            summary = run_eval(spec, out, callback, verify)
        status = "cancelled" if summary.get("stop_reason") == "cancelled" else "succeeded"
    finally:
        progress.close()
        if tracking:
            tracking.finish(status, final_dir=summary.get("final"), summary=summary)
    print(json.dumps({"run_dir": str(out), **summary}, indent=2))
    return 0


def _mlflow_run(spec, out: Path):
    """The spec's MLflow run (`tracking.mlflow`), keyed by the run directory, or None."""
    wanted = spec.tracking.mlflow
    if wanted is None:
        return None
    from rlvr.tracking import MlflowRun

    # No URI: MLflow's own default (MLFLOW_TRACKING_URI, else ./mlruns).
    return MlflowRun.open(
        wanted.uri,
        wanted.experiment,
        wanted.run_name or out.name,
        params=spec.model_dump(mode="json"),
        key={"rlvr.run_dir": str(out.resolve())},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlvr", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for kind in SPECS:
        job = commands.add_parser(kind, help=f"run a {kind} job from a YAML or JSON spec")
        job.add_argument("spec", help="path to SPEC.yaml or SPEC.json")
        job.add_argument(
            "--run-dir",
            help="where metrics, experiences and checkpoints go (default runs/KIND-TIME)",
        )
    tiny = commands.add_parser(
        "tiny-model", help="build the tiny local Llama and tokenizer in HF format"
    )
    tiny.add_argument("out_dir")
    tiny.add_argument("--hidden-size", type=int, default=128)
    tiny.add_argument("--layers", type=int, default=4)
    tiny.add_argument("--heads", type=int, default=4)
    tiny.add_argument("--seed", type=int, default=0)
    schema = commands.add_parser("schema", help="print the JSON schema of a spec")
    schema.add_argument("kind", choices=sorted(SPECS))
    client_cli.add_commands(commands)
    args = parser.parse_args(argv)

    if args.command in client_cli.COMMANDS:
        return client_cli.run(args)

    if args.command == "tiny-model":
        from rlvr.tiny import build_tiny_model

        path = build_tiny_model(
            args.out_dir,
            hidden_size=args.hidden_size,
            layers=args.layers,
            heads=args.heads,
            seed=args.seed,
        )
        print(path)
        return 0
    if args.command == "schema":
        print(json.dumps(SPECS[args.kind].model_json_schema(), indent=2))
        return 0
    return _run_job(args.command, args.spec, args.run_dir)
