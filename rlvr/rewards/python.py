"""The ``python`` reward: a user's own reward function, given as source in the spec, run in the
sandbox on the verify pool, never in the worker's process.

A spec names it as ``{name: python, kwargs: {source: "def reward(prompt, completion, answer):
..."}}``. At submit, ``check_source`` (the ``source`` setting's type) parses the source and
requires a top-level ``def reward`` that takes three positional arguments, within
``MAX_SOURCE_CHARS``: a 400 names ``rewards[i].kwargs.source``.

On the worker, a step's completions go to the sandbox in a few runs of ``CHUNK`` each, through
the injected ``verify`` (``rlvr.verifier.RequestVerifier.run_scripts``: the same transport code
rewards use, the verify queue on the service, an nsjail pool in the CLI). Each run is one
jail running ``HARNESS``: it loads the source, calls ``reward`` once per row with a per-call
alarm (``timeout``), and prints one JSON line per row. The host reads those lines; it decides
what each value is worth:

- a finite number: clamped into ``[min_value, max_value]``;
- anything else (an exception, a per-call timeout, a non-number, NaN or infinity, a run the
  jail stopped for time, memory or output, no line at all): 0.0, and the reason is logged;
- a run the sandbox itself could not start (``sandbox_error``): None, never 0 (DESIGN).

The source is the user's own, so it may forge its own lines; it cannot reach another job's
rows, the worker, files or the network (the jail's limits: no network, a bare filesystem,
a pid cap that stops fork bombs, a wall clock, an output cap).
"""

import ast
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from rlvr.rewards.base import register_reward

log = logging.getLogger(__name__)

MAX_SOURCE_CHARS = 50_000
CHUNK = 16
"""Rows per jail: small enough that every row's line fits the 4 KiB of stdout a verdict keeps
(a line is at most about 130 characters) and that runs spread over the verify pool."""
_REASON_CHARS = 80


def check_source(source: str) -> str:
    """``source`` if it parses and defines ``reward(prompt, completion, answer)``; else a
    ValueError saying why.

    >>> check_source("def reward(prompt, completion, answer):\\n    return 1.0")[:10]
    'def reward'
    >>> check_source("def reward(completion):\\n    return 1.0")
    Traceback (most recent call last):
    ...
    ValueError: `reward` must take three positional arguments (prompt, completion, answer)
    >>> check_source("reward = lambda p, c, a: 1")
    Traceback (most recent call last):
    ...
    ValueError: the source must define `def reward(prompt, completion, answer)` at top level
    """
    if len(source) > MAX_SOURCE_CHARS:
        raise ValueError(f"the source has {len(source)} characters; at most {MAX_SOURCE_CHARS}")
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise ValueError(f"the source does not parse: {error.msg} (line {error.lineno})") from None
    defined = [
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "reward"
    ]
    if not defined:
        raise ValueError(
            "the source must define `def reward(prompt, completion, answer)` at top level"
        )
    args = defined[-1].args
    positional = len(args.posonlyargs) + len(args.args)
    required = positional - len(args.defaults)
    required_keywords = sum(default is None for default in args.kw_defaults)
    if required > 3 or (positional < 3 and args.vararg is None) or required_keywords:
        raise ValueError(
            "`reward` must take three positional arguments (prompt, completion, answer)"
        )
    return source


PythonSource = Annotated[str, AfterValidator(check_source)]

# Runs inside the jail. The user's prints go to a sink, so that only these lines reach stdout;
# the alarm turns a call that runs too long into an exception for that row alone.
HARNESS = """
import io, json, signal, sys

class _Late(BaseException):
    pass

def _late(*_):
    raise _Late()

class _Sink(io.TextIOBase):
    def writable(self):
        return True
    def write(self, text):
        return len(text)

def _why(error):
    if isinstance(error, _Late):
        return "timeout: a call ran past %s s" % TIMEOUT
    text = "%s: %s" % (type(error).__name__, error)
    return text.encode("ascii", "replace").decode()[:REASON_CHARS]

def _emit(index, key, value):
    OUT.write(json.dumps({"i": index, key: value}) + "\\n")
    OUT.flush()

OUT = sys.stdout
rows = json.loads(sys.stdin.read())
sys.stdout = sys.stderr = _Sink()
signal.signal(signal.SIGALRM, _late)
namespace = {"__name__": "reward_source"}
try:
    signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
    exec(compile(SOURCE, "<reward>", "exec"), namespace)
    signal.setitimer(signal.ITIMER_REAL, 0)
    reward = namespace["reward"]
except BaseException as error:
    signal.setitimer(signal.ITIMER_REAL, 0)
    for index in range(len(rows)):
        _emit(index, "e", "loading the source: " + _why(error))
    raise SystemExit(0)
for index, (prompt, completion, answer) in enumerate(rows):
    try:
        signal.setitimer(signal.ITIMER_REAL, TIMEOUT)
        value = reward(prompt, completion, answer)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("reward returned %s, not a number" % type(value).__name__)
        value = float(value)
        signal.setitimer(signal.ITIMER_REAL, 0)
        _emit(index, "v", value)
    except BaseException as error:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _emit(index, "e", _why(error))
"""


@dataclass(frozen=True)
class PythonScore:
    """One completion's score, and why it is 0 when the function gave no usable number."""

    value: float | None
    reason: str | None = None


def program(source: str, timeout: float) -> str:
    """The jail's program: the harness with the source as a string, never spliced in as code."""
    return f"SOURCE = {source!r}\nTIMEOUT = {timeout!r}\nREASON_CHARS = {_REASON_CHARS}\n{HARNESS}"


def scores_from(verdict: dict[str, Any], count: int, low: float, high: float) -> list[PythonScore]:
    """A run's ``count`` scores from its verdict (the sandbox's ``Verdict`` as a dict).

    >>> run = {"status": "ok", "stdout": '{"i": 0, "v": 7.0}\\n{"i": 1, "e": "KeyError: 1"}\\n'}
    >>> scores_from(run, 3, -1.0, 1.0)  # doctest: +NORMALIZE_WHITESPACE
    [PythonScore(value=1.0, reason=None), PythonScore(value=0.0, reason='KeyError: 1'),
     PythonScore(value=0.0, reason='no result: the run ended (exit code ?)')]
    >>> scores_from({"status": "sandbox_error", "error": "no jail"}, 1, 0.0, 1.0)
    [PythonScore(value=None, reason='the sandbox could not run it: no jail')]
    """
    if verdict.get("status") == "sandbox_error":
        return [PythonScore(None, f"the sandbox could not run it: {verdict.get('error')}")] * count
    found: dict[int, PythonScore] = {}
    for line in str(verdict.get("stdout") or "").splitlines():
        try:
            row = json.loads(line)
            index = row["i"]
        except (ValueError, TypeError, KeyError):
            continue  # the source wrote to the real stdout: not one of the harness's lines
        if not isinstance(index, int) or not 0 <= index < count or index in found:
            continue
        value = row.get("v")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            found[index] = PythonScore(min(max(float(value), low), high))
        elif "v" in row:
            found[index] = PythonScore(0.0, f"not a finite number: {value!r}")
        else:
            found[index] = PythonScore(0.0, str(row.get("e"))[:_REASON_CHARS])
    if verdict.get("status") == "ok":
        ended = f"no result: the run ended (exit code {verdict.get('exit_code', '?')})"
    else:
        ended = f"no result: {verdict.get('status')} ({verdict.get('error')})"
    return [found.get(index, PythonScore(0.0, ended)) for index in range(count)]


def jail_seconds(timeout: float, rows: int = CHUNK) -> float:
    """The wall time a jail of ``rows`` rows is given: the source loads once, then each row has
    ``timeout``; the rest is start-up slack. The service refuses a ``timeout`` whose full jail
    would pass its sandbox ceiling (``service.limits``)."""
    return timeout * (rows + 1) + 5.0


def run_python_reward(
    source: str,
    rows: Sequence[tuple[str, str, str]],
    run_scripts: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    timeout: float = 1.0,
    low: float = -1.0,
    high: float = 1.0,
) -> list[PythonScore]:
    """``reward(prompt, completion, answer)`` of each row, run ``CHUNK`` rows to a jail."""
    chunks = [list(rows[start : start + CHUNK]) for start in range(0, len(rows), CHUNK)]
    code = program(source, timeout)
    requests = [
        {
            "id": f"python-reward-{number}",
            "program": code,
            "tests": {"kind": "script", "stdin": json.dumps(chunk)},
            "limits": {"wall_seconds": jail_seconds(timeout, len(chunk))},
        }
        for number, chunk in enumerate(chunks)
    ]
    verdicts = run_scripts(requests) if requests else []
    return [
        score
        for chunk, verdict in zip(chunks, verdicts, strict=True)
        for score in scores_from(verdict, len(chunk), low, high)
    ]


def _ordered(settings: Any) -> None:
    if settings.min_value > settings.max_value:
        raise ValueError("min_value must not be above max_value")


@register_reward("python", settings=("source", "timeout", "min_value", "max_value"), check=_ordered)
def python_reward(
    completions: list[str],
    prompt: Sequence[str],
    answer: Sequence[Any],
    source: PythonSource,
    timeout: Annotated[float, Field(gt=0, le=10)] = 1.0,
    min_value: float = -1.0,
    max_value: float = 1.0,
    verify: Any = None,
    **_columns,
) -> list[float | None]:
    """``reward(prompt, completion, answer) -> float`` from ``source``, run in the sandbox;
    ``timeout`` seconds per call, the value clamped into ``[min_value, max_value]``, 0.0 for
    a call that gives no finite number (the reason logged), None when the sandbox could not
    run at all."""
    run_scripts = getattr(verify, "run_scripts", None)
    if run_scripts is None:
        # Running the source here instead would run a user's code in the worker's process.
        raise ValueError("the python reward runs in the sandbox: this run has no verifier")
    rows = [
        (str(p), c, "" if a is None else str(a)) for p, c, a in zip(prompt, completions, answer)
    ]
    scores = run_python_reward(source, rows, run_scripts, timeout, min_value, max_value)
    failed = [score.reason for score in scores if score.reason is not None]
    if failed:
        log.warning(
            "python reward: %d of %d completions not scored by the function (first: %s)",
            len(failed),
            len(scores),
            failed[0],
        )
    return [score.value for score in scores]
