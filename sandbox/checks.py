"""Assert-style tests, split so that the jail computes and the host judges.

`assert set(similar(a, b)) == set((4, 5))` becomes a *probe*, `similar(a, b)`, that the jail
evaluates in the program's namespace and sends back as a plain value, and a *check*,
`set(P0) == set((4, 5))`, that the host evaluates with a small interpreter over `ast` nodes
that knows a fixed list of pure built-ins. Every maximal sub-expression the host cannot
evaluate alone (a name from the program or the setup code, a call into it, a method call, a
comprehension) becomes a probe. So the expected values never enter the jail, and nothing the
program does to its own process (patching builtins, objects whose `__eq__` is always True,
rewriting frames, printing "PASSED") can make the host's comparison true.

HumanEval's `check(candidate)` is read the same way, `candidate` standing for the entry
point. A `check` body that is not a plain list of asserts (loops, random inputs) cannot be
split; it runs whole in the jail and passes if it returns, which a program that tampers with
its process could fake. `Check.judged_in_jail` marks those tests.
"""

from __future__ import annotations

import ast
import copy
import math
import operator
import warnings
from collections.abc import Set
from dataclasses import dataclass
from typing import Any


class TestSpecError(ValueError):
    """The tests themselves are malformed (not the program's fault)."""

    __test__ = False  # not a pytest class


@dataclass(frozen=True)
class Check:
    source: str  # the assert as written, for reports
    expr: ast.Expression  # evaluated on the host; probes appear as names P0, P1, ...
    probes: tuple[str, ...]  # expressions evaluated in the jail, in order
    judged_in_jail: bool = False


_HOST_FUNCTIONS: dict[str, Any] = {
    f.__name__: f
    for f in (abs, all, any, bool, dict, float, frozenset, int, isinstance, len, list, max, min,
              round, set, sorted, str, sum, tuple, type, complex, bytes, reversed, enumerate, zip, range)
}
_MATH = {name: getattr(math, name) for name in (
    "isclose", "fabs", "sqrt", "floor", "ceil", "isnan", "isinf", "pi", "e", "inf", "nan", "log", "exp", "trunc")}
_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor,
    ast.LShift: operator.lshift, ast.RShift: operator.rshift,
}
_UNARY = {ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}
_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b, ast.Is: operator.is_, ast.IsNot: operator.is_not,
}
_STRUCTURAL = (ast.Compare, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Tuple, ast.List, ast.Set,
               ast.Dict, ast.Subscript, ast.Slice, ast.IfExp)
_MAX_SIZE = 10_000_000  # bound on sizes the host will build from a program's values


def parse_tests(
    tests: list[str] | str, *, entry_point: str | None = None, program: str = ""
) -> tuple[str, list[Check]]:
    """Return (setup code for the jail, checks). Raises TestSpecError on malformed tests.

    `program` is read (never run) for the names it binds at module level: an assert that
    would otherwise not touch the program at all, like MBPP's `assert sum(10, 15) == 6`
    for a program defining `sum`, calls the program's function instead of the built-in.
    Only then: elsewhere a built-in stays the host's, so a program that redefines `set`
    cannot take over the expected side of `assert f(x) == set([1, 2])`.
    """
    shadowed = frozenset(_module_names(program)) & _HOST_FUNCTIONS.keys()
    if isinstance(tests, list):
        checks = [_check(_parse_assert(t), t, shadowed) for t in tests]
        return "", checks
    module = _parse(tests)
    setup: list[ast.stmt] = []
    checks: list[Check] = []
    for stmt in module.body:
        if isinstance(stmt, ast.Assert):
            checks.append(_check(stmt, ast.unparse(stmt), shadowed))
        elif entry_point and isinstance(stmt, ast.FunctionDef) and stmt.name == "check":
            setup.append(stmt)
            checks.extend(_check_function(stmt, entry_point, shadowed))
        else:
            setup.append(stmt)
    if not checks:
        raise TestSpecError("no assert statements found in the tests")
    return ast.unparse(ast.Module(body=setup, type_ignores=[])), checks


def _parse(source: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        raise TestSpecError(f"tests do not parse: {exc.msg} (line {exc.lineno})") from None


def _parse_assert(source: str) -> ast.Assert:
    body = _parse(source).body
    if len(body) != 1 or not isinstance(body[0], ast.Assert):
        raise TestSpecError(f"not a single assert statement: {source[:80]!r}")
    return body[0]


def _module_names(program: str) -> set[str]:
    """Names a program binds at module level (definitions, assignments, imports)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # invalid escapes: the program's business
            module = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()  # the jail will report the program's own error
    names: set[str] = set()
    for stmt in module.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in stmt.names)
        else:
            names.update(n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return names


def _check_function(fn: ast.FunctionDef, entry_point: str, shadowed: frozenset[str]) -> list[Check]:
    params = [a.arg for a in fn.args.args]
    if len(params) != 1:
        raise TestSpecError("check() must take exactly one argument, the candidate function")
    if all(isinstance(s, ast.Assert) or _is_docstring(s) for s in fn.body):
        rename = _Rename(params[0], entry_point)
        return [_check(rename.visit(s), ast.unparse(s), shadowed) for s in fn.body if isinstance(s, ast.Assert)]
    call = f"check({entry_point})"
    return [Check(source=call, expr=ast.Expression(ast.Constant(True)), probes=(call,), judged_in_jail=True)]


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)


class _Rename(ast.NodeTransformer):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.copy_location(ast.Name(self.new, node.ctx), node) if node.id == self.old else node


def _check(stmt: ast.Assert, source: str, shadowed: frozenset[str] = frozenset()) -> Check:
    probes: list[str] = []
    host_names = _HOST_FUNCTIONS.keys()
    expr = _split(copy.deepcopy(stmt.test), probes, host_names)
    if not probes and shadowed:
        expr = _split(copy.deepcopy(stmt.test), probes, host_names - shadowed)
    return Check(source=source, expr=ast.fix_missing_locations(ast.Expression(expr)), probes=tuple(probes))


def _host_only(node: ast.AST, host_names: Set[str]) -> bool:
    """True if the host can evaluate `node` without the program."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return node.id in host_names
    if isinstance(node, ast.Attribute):
        return isinstance(node.value, ast.Name) and node.value.id == "math" and node.attr in _MATH
    if isinstance(node, ast.Call):
        return _host_only(node.func, host_names) \
            and all(_host_only(n, host_names) for n in [*node.args, *(k.value for k in node.keywords)]) \
            and not any(isinstance(a, ast.Starred) for a in node.args)
    if isinstance(node, _STRUCTURAL):
        return all(_host_only(child, host_names) for child in ast.iter_child_nodes(node) if not _is_operator(child))
    return False


def _is_operator(node: ast.AST) -> bool:
    return isinstance(node, (ast.operator, ast.unaryop, ast.cmpop, ast.boolop, ast.expr_context))


def _split(node: ast.expr, probes: list[str], host_names: Set[str]) -> ast.expr:
    """Replace each maximal sub-expression that needs the program with a probe name."""
    if _host_only(node, host_names):
        return node
    structural_call = (
        isinstance(node, ast.Call) and _host_only(node.func, host_names)
        and not any(isinstance(a, ast.Starred) for a in node.args)
        and not any(isinstance(n, ast.Lambda) for n in ast.walk(node))  # a key= function must run in the jail
    )
    if isinstance(node, _STRUCTURAL) or structural_call:
        for field, value in ast.iter_fields(node):
            if isinstance(value, ast.expr):
                setattr(node, field, _split(value, probes, host_names))
            elif isinstance(value, list):
                setattr(node, field, [_split(v, probes, host_names) if isinstance(v, ast.expr) else v for v in value])
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                kw.value = _split(kw.value, probes, host_names)
        return node
    probes.append(ast.unparse(node))
    return ast.Name(f"P{len(probes) - 1}", ast.Load())


class JudgeError(Exception):
    """The program's values could not be judged (an unknown type, an absurd size)."""


def evaluate(check: Check, values: list[Any]) -> bool:
    """Evaluate the host side of `check` with the probes' decoded values."""
    if len(values) != len(check.probes):
        raise JudgeError(f"expected {len(check.probes)} values, got {len(values)}")
    env = {f"P{i}": v for i, v in enumerate(values)}
    try:
        return bool(_eval(check.expr.body, env))
    except JudgeError:
        raise
    except Exception as exc:  # a TypeError from comparing an opaque object, say: the value is wrong
        raise JudgeError(f"{type(exc).__name__}: {exc}"[:200]) from None


def _eval(node: ast.AST, env: dict[str, Any]) -> Any:
    match node:
        case ast.Constant(value=v):
            return v
        case ast.Name(id=name):
            if name in env:
                return env[name]
            return _HOST_FUNCTIONS[name]
        case ast.Attribute(attr=attr):
            return _MATH[attr]
        case ast.Tuple(elts=elts):
            return tuple(_eval(e, env) for e in elts)
        case ast.List(elts=elts):
            return [_eval(e, env) for e in elts]
        case ast.Set(elts=elts):
            return {_eval(e, env) for e in elts}
        case ast.Dict(keys=keys, values=vals):
            return {_eval(k, env): _eval(v, env) for k, v in zip(keys, vals)}
        case ast.UnaryOp(op=op, operand=operand):
            return _UNARY[type(op)](_eval(operand, env))
        case ast.BinOp(left=left, op=op, right=right):
            return _binop(op, _eval(left, env), _eval(right, env))
        case ast.BoolOp(op=ast.And(), values=vals):
            result = True
            for v in vals:
                result = _eval(v, env)
                if not result:
                    return result
            return result
        case ast.BoolOp(op=ast.Or(), values=vals):
            result = False
            for v in vals:
                result = _eval(v, env)
                if result:
                    return result
            return result
        case ast.Compare(left=left, ops=ops, comparators=comps):
            a = _eval(left, env)
            for op, comp in zip(ops, comps):
                b = _eval(comp, env)
                if not _COMPARE[type(op)](a, b):
                    return False
                a = b
            return True
        case ast.IfExp(test=test, body=body, orelse=orelse):
            return _eval(body, env) if _eval(test, env) else _eval(orelse, env)
        case ast.Subscript(value=value, slice=index):
            return _eval(value, env)[_eval(index, env)]
        case ast.Slice(lower=lo, upper=hi, step=step):
            return slice(*(None if n is None else _eval(n, env) for n in (lo, hi, step)))
        case ast.Call(func=func, args=args, keywords=keywords):
            fn = _eval(func, env)
            if fn is range:
                _bounded(len(range(*(_eval(a, env) for a in args))))
            return fn(*(_eval(a, env) for a in args), **{k.arg: _eval(k.value, env) for k in keywords})
    raise JudgeError(f"cannot evaluate {type(node).__name__} on the host")


def _binop(op: ast.operator, a: Any, b: Any) -> Any:
    # The host must not be made to build something huge from a program's value.
    if isinstance(op, ast.Pow) and isinstance(b, int) and isinstance(a, int):
        _bounded(abs(b) * max(a.bit_length(), 1) // 8)
    if isinstance(op, ast.LShift) and isinstance(b, int):
        _bounded(b // 8)
    if isinstance(op, ast.Mult):
        for seq, n in ((a, b), (b, a)):
            if isinstance(seq, (str, bytes, list, tuple)) and isinstance(n, int):
                _bounded(len(seq) * n)
    if isinstance(op, ast.Mod) and isinstance(a, (str, bytes)):
        raise JudgeError("string formatting is not evaluated on the host")
    return _BINOPS[type(op)](a, b)


def _bounded(size: int) -> None:
    if size > _MAX_SIZE:
        raise JudgeError(f"result of size {size} is too large to judge")
