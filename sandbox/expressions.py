"""The host side of a check: the names it may use, and the small interpreter that runs it.

A check's host side (`set(P0) == set((4, 5))`) uses constants, the probe values P0, P1, ...
and a fixed list of pure built-ins (`HOST_FUNCTIONS`, `MATH`), nothing else. It is evaluated
by walking its `ast`, never with `eval`, and refuses to build huge values from a program's
(`2 ** P0`, `P0 * 10 ** 9`). Evaluation runs in the assessor's helper process
(`sandbox.assessor`), whose time and memory are bounded, because some built-ins (`set` over
hash-colliding ints, say) cost far more than their input's size suggests.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any

HOST_FUNCTIONS: dict[str, Any] = {
    f.__name__: f
    for f in (abs, all, any, bool, dict, float, frozenset, int, isinstance, len, list, max, min,
              round, set, sorted, str, sum, tuple, type, complex, bytes, reversed, enumerate, zip,
              range)
}  # fmt: skip
MATH = {name: getattr(math, name) for name in (
    "isclose", "fabs", "sqrt", "floor", "ceil", "isnan", "isinf", "pi", "e", "inf", "nan", "log",
    "exp", "trunc")}  # fmt: skip
_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor,
    ast.LShift: operator.lshift, ast.RShift: operator.rshift,
}  # fmt: skip
_UNARY = {
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Invert: operator.invert,
}
_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b, ast.Is: operator.is_, ast.IsNot: operator.is_not,
}  # fmt: skip
_MAX_SIZE = 10_000_000  # bound on sizes the host will build from a program's values


class JudgeError(Exception):
    """The program's values could not be judged (an unknown type, an absurd size)."""


def evaluate(expr: ast.Expression, values: list[Any]) -> bool:
    """Evaluate a check's host side with its probes' decoded values."""
    env = {f"P{i}": v for i, v in enumerate(values)}
    try:
        return bool(_eval(expr.body, env))
    except (JudgeError, MemoryError):  # MemoryError: over the helper's limit, not a wrong value
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
            return HOST_FUNCTIONS[name]
        case ast.Attribute(attr=attr):
            return MATH[attr]
        case ast.Tuple(elts=elts):
            return tuple(_eval(e, env) for e in elts)
        case ast.List(elts=elts):
            return [_eval(e, env) for e in elts]
        case ast.Set(elts=elts):
            return {_eval(e, env) for e in elts}
        case ast.Dict(keys=keys, values=vals):
            return {_eval(k, env): _eval(v, env) for k, v in zip(keys, vals, strict=True)}
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
            for op, comp in zip(ops, comps, strict=True):
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
            return fn(
                *(_eval(a, env) for a in args), **{k.arg: _eval(k.value, env) for k in keywords}
            )
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
