"""A check that can only run in the jail, in a process of its own (not the program's).

Some tests cannot be split into values for the host to compare: a HumanEval `check` that
loops over random inputs, or one that calls a helper the tests define. Their code runs here.
`candidate`, and every other name the program defines that the tests use, is a proxy: a
call sends its arguments to the program's `serve` process over a pipe and decodes the reply
as plain values, under the same limits as the host's. So the program never sees the check's
code or its expected values, and it holds no descriptor to where the outcome goes to the
host: it can make a check fail or stall, never pass.

Descriptors: 0 the plan, `REPORTS` the outcome, `REQUESTS` to the program, `REPLIES` from it.
"""

import builtins
import time

from sandbox import values
from sandbox.inside.program import REPORTS, REQUESTS, error, read_body, receive, send

REPLIES = 61


class ProgramTimeout(BaseException):
    """The program ran past its time on a call; a BaseException, so no check can swallow it."""


class Program:
    """The program's process, seen through its pipes."""

    def __init__(self, max_bytes, seconds):
        self.max_bytes = max_bytes
        self.deadline = time.monotonic() + seconds  # the whole check's, kept soft by the program
        self.raised = None  # the last exception that came from the program

    def receive(self):
        return receive(REPLIES, self.max_bytes)

    def ask(self, request):
        request["seconds"] = max(0.01, self.deadline - time.monotonic())
        send(REQUESTS, request)
        return self.receive()

    def lookup(self, name):
        reply = self.ask({"lookup": name})
        if reply.get("callable") is True:
            return self.proxy(name)
        if "value" in reply:
            return self.value(reply)
        return None  # not the program's: the tests' own use of the name decides

    def proxy(self, name):
        def call(*args, **kwargs):
            request = {
                "call": name,
                "args": [values.encode(a) for a in args],
                "kwargs": {k: values.encode(v) for k, v in kwargs.items()},
            }
            return self.value(self.ask(request))

        call.__name__ = call.__qualname__ = name
        return call

    def value(self, reply):
        if "value" in reply:
            return values.decode(reply["value"])
        if reply.get("timeout") is True:
            raise ProgramTimeout()
        kind, message = reply.get("error") or ("ProgramError", "malformed reply")
        # A built-in exception keeps its class, so `except ValueError` in a check works.
        cls = getattr(builtins, str(kind), None)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            cls = type(str(kind)[:64], (Exception,), {})
        self.raised = cls(str(message))
        raise self.raised


def run():
    plan = read_body()
    program = Program(plan["max_bytes"], plan["test_seconds"])
    loaded = program.receive()
    if "loaded" not in loaded:
        send(REPORTS, {"load_error": loaded})
        return
    namespace = {"__name__": "__test__", "__builtins__": builtins}
    try:
        for name in plan["program_names"]:
            found = program.lookup(name)
            if found is not None:
                namespace[name] = found
        exec(compile(plan["tests"], "<tests>", "exec"), namespace)
        if plan["entry_point"]:
            candidate = program.lookup(plan["entry_point"])
            if candidate is None:
                raise NameError(f"name {plan['entry_point']!r} is not defined")
            namespace["check"](candidate)
        outcome = {"pass": True}
    except ProgramTimeout:
        outcome = {"timeout": True}
    except AssertionError as exc:
        outcome = {"error" if exc is program.raised else "fail": error(exc)["error"]}
    except BaseException as exc:
        outcome = error(exc)
    send(REPORTS, outcome)
