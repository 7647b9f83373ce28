"""`python -m sandbox verify FILE.jsonl`: verify every line, show progress, print a summary."""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time

from tqdm import tqdm

from sandbox.core import Sandbox, SandboxUnavailable, default_concurrency, verify_iter
from sandbox.datasets import read_requests
from sandbox.models import Limits, Verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser(
        "verify", help="verify (program, tests) lines; MBPP rows are accepted as they are"
    )
    verify.add_argument("file", help="JSONL file of VerifyRequest objects or MBPP rows")
    verify.add_argument(
        "--json",
        action="store_true",
        help="print one verdict per line as JSON, then the summary on stderr",
    )
    verify.add_argument(
        "--concurrency",
        type=int,
        default=default_concurrency(),
        help="programs at once (default: twice the cores)",
    )
    verify.add_argument(
        "--wall-seconds", type=float, help="override every request's wall-clock limit"
    )
    verify.add_argument(
        "--show-failures", type=int, default=10, metavar="N", help="list up to N failing ids"
    )
    args = parser.parse_args(argv)

    try:
        requests = list(read_requests(args.file))
        if args.wall_seconds:
            requests = [
                r.model_copy(
                    update={
                        "limits": Limits(
                            **{**r.limits.model_dump(), "wall_seconds": args.wall_seconds}
                        )
                    }
                )
                for r in requests
            ]
        box = Sandbox()
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SandboxUnavailable as exc:
        print(f"sandbox unavailable: {exc}", file=sys.stderr)
        return 3

    start = time.monotonic()
    verdicts: list[Verdict] = []
    # Closing ends the warm jails and removes their cgroups: a CLI run leaves nothing behind.
    with box, tqdm(total=len(requests), unit="prog", file=sys.stderr, disable=None) as bar:
        for verdict in verify_iter(requests, sandbox=box, concurrency=max(1, args.concurrency)):
            verdicts.append(verdict)
            if args.json:
                print(verdict.model_dump_json())
            bar.update()
    elapsed = time.monotonic() - start
    summary = summarise(verdicts, elapsed)
    out = sys.stderr if args.json else sys.stdout
    print(format_summary(summary, args.show_failures), file=out)
    return 0


def summarise(verdicts: list[Verdict], elapsed: float) -> dict:
    failing = [v.id for v in verdicts if not v.all_passed]
    return {
        "programs": len(verdicts),
        "all_passed": sum(v.all_passed for v in verdicts),
        "tests_passed": sum(v.passed for v in verdicts),
        "tests_total": sum(v.total for v in verdicts),
        "status": dict(collections.Counter(v.status for v in verdicts)),
        "outcomes": dict(collections.Counter(t.outcome for v in verdicts for t in v.tests)),
        "failing_ids": failing,
        "seconds": round(elapsed, 2),
        "programs_per_second": round(len(verdicts) / elapsed, 1) if elapsed else None,
    }


def format_summary(summary: dict, show: int) -> str:
    lines = [
        f"{summary['all_passed']}/{summary['programs']} programs passed all their tests "
        f"({summary['tests_passed']}/{summary['tests_total']} tests) in {summary['seconds']}s, "
        f"{summary['programs_per_second']} programs/s",
        f"status: {json.dumps(summary['status'])}  outcomes: {json.dumps(summary['outcomes'])}",
    ]
    if summary["failing_ids"] and show:
        ids = summary["failing_ids"]
        lines.append(
            f"not all passed: {', '.join(map(str, ids[:show]))}{' ...' if len(ids) > show else ''}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
