"""Assert-style tests, split so that the jail computes and the host judges.

`assert set(similar(a, b)) == set((4, 5))` becomes a *probe*, `similar(a, b)`, that the
program's process evaluates and sends back as a plain value, and a host side,
`set(P0) == set((4, 5))`, that the host evaluates (`sandbox.expressions`). Every maximal
sub-expression the host cannot evaluate alone (a name from the program or the setup code, a
call into it, a method call, a comprehension) becomes a probe. So expected values never
reach the program, and nothing it does to its own process (patching builtins, objects whose
`__eq__` is always True, rewriting frames, printing "PASSED") can make a comparison true.

Test source (HumanEval's `check(candidate)` with an entry point, or module-level asserts) is
split the same way when it is only asserts over the program and built-ins, `candidate`
standing for the entry point; its imports, and nothing else of it, run before the probes.
Anything else (a loop, random inputs, a helper or a value the tests define) cannot be split
without handing the program what it is compared with, so the whole source becomes one check
judged in the jail, in a process of its own (`sandbox/inside/check.py`): `Check.jail`.
"""

from __future__ import annotations

import ast
import builtins
import copy
import warnings
from collections.abc import Set
from dataclasses import dataclass

from sandbox.expressions import HOST_FUNCTIONS, MATH


class TestSpecError(ValueError):
    """The tests themselves are malformed (not the program's fault)."""

    __test__ = False  # not a pytest class


@dataclass(frozen=True)
class JailCheck:
    """Test source run whole in a check process; the program answers its calls."""

    tests: str
    entry_point: str | None  # `check(<its proxy>)` is called after the source runs
    program_names: tuple[str, ...]  # what the tests use of the program's, as proxies


@dataclass(frozen=True)
class Check:
    source: str  # the assert as written, for reports
    expr: ast.Expression | None = None  # the host side; probes appear as names P0, P1, ...
    probes: tuple[str, ...] = ()  # expressions the program's process evaluates, in order
    jail: JailCheck | None = None  # instead of the above, for tests that cannot be split

    @property
    def judged_in_jail(self) -> bool:
        return self.jail is not None


_STRUCTURAL = (ast.Compare, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Tuple, ast.List, ast.Set,
               ast.Dict, ast.Subscript, ast.Slice, ast.IfExp)  # fmt: skip
# Module-level statements of test source that may stay out of the program's process when
# the asserts are split: they bind nothing the asserts read (checked), or only imports.
_INERT = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.Pass)


def parse_tests(
    tests: list[str] | str, *, entry_point: str | None = None, program: str = ""
) -> tuple[str, list[Check]]:
    """Return (setup code for the program's process, checks); TestSpecError if malformed.

    `program` is read (never run) for the names it binds at module level: an assert that
    would otherwise not touch the program at all, like MBPP's `assert sum(10, 15) == 6`
    for a program defining `sum`, calls the program's function instead of the built-in.
    Only then: elsewhere a built-in stays the host's, so a program that redefines `set`
    cannot take over the expected side of `assert f(x) == set([1, 2])`.
    """
    program_names = _module_names(program)
    shadowed = frozenset(program_names) & HOST_FUNCTIONS.keys()
    if isinstance(tests, list):
        return "", [_check(_parse_assert(t), t, shadowed) for t in tests]
    module = _parse(tests)
    asserts = _splittable_asserts(module, entry_point)
    if asserts is None:
        calls_check = bool(entry_point) and _defines_check(module)
        used = {n.id for n in ast.walk(module) if isinstance(n, ast.Name)}
        names = (used & program_names) - _bound_names(module) - set(dir(builtins))
        if calls_check:
            names.discard(entry_point)  # looked up as `candidate`
        jail = JailCheck(tests, entry_point if calls_check else None, tuple(sorted(names)))
        return "", [
            Check(source=f"check({entry_point})" if jail.entry_point else "tests", jail=jail)
        ]
    if not asserts:
        raise TestSpecError("no assert statements found in the tests")
    imports = [s for s in module.body if isinstance(s, (ast.Import, ast.ImportFrom))]
    setup = ast.unparse(ast.Module(body=imports, type_ignores=[]))
    return setup, [_check(stmt, ast.unparse(stmt), shadowed) for stmt in asserts]


def _splittable_asserts(module: ast.Module, entry_point: str | None) -> list[ast.Assert] | None:
    """The asserts to split, with `candidate` renamed; None if the source must run whole."""
    asserts: list[ast.Assert] = []
    for stmt in module.body:
        if isinstance(stmt, ast.Assert):
            asserts.append(stmt)
        elif entry_point and isinstance(stmt, ast.FunctionDef) and stmt.name == "check":
            params = [a.arg for a in stmt.args.args]
            if len(params) != 1:
                raise TestSpecError(
                    "check() must take exactly one argument, the candidate function"
                )
            if not all(isinstance(s, ast.Assert) or _is_docstring(s) for s in stmt.body):
                return None
            rename = _Rename(params[0], entry_point)
            asserts += [rename.visit(s) for s in stmt.body if isinstance(s, ast.Assert)]
        elif not (isinstance(stmt, _INERT) or _is_docstring(stmt)):
            return None  # a loop, a call, a helper: code that must run to judge
    # An assert that reads a value the tests bind (not an import) would send it to the program.
    bound = _bound_names(module, imports=False) - {"check"}
    if any(isinstance(n, ast.Name) and n.id in bound for a in asserts for n in ast.walk(a)):
        return None
    return asserts


def _defines_check(module: ast.Module) -> bool:
    return any(isinstance(s, ast.FunctionDef) and s.name == "check" for s in module.body)


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
            warnings.simplefilter(
                "ignore", SyntaxWarning
            )  # invalid escapes: the program's business
            return _bound_names(ast.parse(program))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()  # the jail will report the program's own error


def _bound_names(module: ast.Module, *, imports: bool = True) -> set[str]:
    names: set[str] = set()
    for stmt in module.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            if imports:
                names.update((a.asname or a.name).split(".")[0] for a in stmt.names)
        else:
            names.update(
                n.id
                for n in ast.walk(stmt)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
            )
    return names


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)


class _Rename(ast.NodeTransformer):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return (
            ast.copy_location(ast.Name(self.new, node.ctx), node) if node.id == self.old else node
        )


def _check(stmt: ast.Assert, source: str, shadowed: frozenset[str] = frozenset()) -> Check:
    probes: list[str] = []
    host_names = HOST_FUNCTIONS.keys()
    # `_split` rewrites the tree in place, and `stmt` is ours (freshly parsed): a copy is
    # needed only to split a second time (deepcopy costs a millisecond per assert).
    original = copy.deepcopy(stmt.test) if shadowed else None
    expr = _split(stmt.test, probes, host_names)
    if not probes and original is not None:
        expr = _split(original, probes, host_names - shadowed)
    return Check(
        source=source, expr=ast.fix_missing_locations(ast.Expression(expr)), probes=tuple(probes)
    )


def _host_only(node: ast.AST, host_names: Set[str]) -> bool:
    """True if the host can evaluate `node` without the program."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return node.id in host_names
    if isinstance(node, ast.Attribute):
        return isinstance(node.value, ast.Name) and node.value.id == "math" and node.attr in MATH
    if isinstance(node, ast.Call):
        return (
            _host_only(node.func, host_names)
            and all(
                _host_only(n, host_names) for n in [*node.args, *(k.value for k in node.keywords)]
            )
            and not any(isinstance(a, ast.Starred) for a in node.args)
        )
    if isinstance(node, _STRUCTURAL):
        return all(
            _host_only(child, host_names)
            for child in ast.iter_child_nodes(node)
            if not _is_operator(child)
        )
    return False


def _is_operator(node: ast.AST) -> bool:
    return isinstance(node, (ast.operator, ast.unaryop, ast.cmpop, ast.boolop, ast.expr_context))


def _split(node: ast.expr, probes: list[str], host_names: Set[str]) -> ast.expr:
    """Replace each maximal sub-expression that needs the program with a probe name."""
    if _host_only(node, host_names):
        return node
    structural_call = (
        isinstance(node, ast.Call)
        and _host_only(node.func, host_names)
        and not any(isinstance(a, ast.Starred) for a in node.args)
        and not any(
            isinstance(n, ast.Lambda) for n in ast.walk(node)
        )  # a key= function must run in the jail
    )
    if isinstance(node, _STRUCTURAL) or structural_call:
        for field, value in ast.iter_fields(node):
            if isinstance(value, ast.expr):
                setattr(node, field, _split(value, probes, host_names))
            elif isinstance(value, list):
                setattr(
                    node,
                    field,
                    [
                        _split(v, probes, host_names) if isinstance(v, ast.expr) else v
                        for v in value
                    ],
                )
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                kw.value = _split(kw.value, probes, host_names)
        return node
    probes.append(ast.unparse(node))
    return ast.Name(f"P{len(probes) - 1}", ast.Load())
