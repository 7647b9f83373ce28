"""Code in completions: reading the program out of one.

Owns extraction only (fenced blocks, bare code after prose, unclosed fences from cut-off
generations) and so imports nothing of ``rlvr``. Does not own the base of code tasks
(``rlvr.tasks.base.CodeTask``), running code (``rlvr.verifier`` and ``sandbox/``) nor
scoring it (``rlvr.rewards.code``).
"""

import ast
import re
import warnings

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3"}
_CODE_START = re.compile(r"^(?:def |class |import |from \S+ import |@|async def |if __name__)")


def _parse(source: str) -> ast.Module | None:
    with warnings.catch_warnings():  # invalid escapes in the program are its business, not ours
        warnings.simplefilter("ignore", SyntaxWarning)
        try:
            return ast.parse(source)
        except (SyntaxError, ValueError):
            return None


def parses(source: str) -> bool:
    return _parse(source) is not None


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag, body) of each fenced block, an unclosed last fence running to the end.

    >>> fenced_blocks("Here:\\n```python\\nx = 1\\n```\\nand ```\\ny")
    [('python', 'x = 1\\n'), ('', 'y')]
    """
    return [(tag.lower(), body) for tag, body in _FENCE.findall(text)]


def _trim_to_parse(lines: list[str]) -> str | None:
    """The longest prefix of ``lines`` (dropping trailing prose) that parses, if any."""
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end]).rstrip() + "\n"
        if parses(candidate):
            return candidate
    return None


def extract_code(completion: str) -> str:
    """The Python program in a completion.

    A fenced Python (or untagged) block wins: the first one that parses, else the first.
    Without fences, a completion that parses is the program; otherwise prose before the
    first line that starts code (``def``, ``import``, ...) and prose after the longest part
    that parses are dropped. What cannot be made to parse is returned as is, so the sandbox
    reports its SyntaxError.

    >>> extract_code("Sure!\\n```python\\ndef f(x):\\n    return x\\n```\\nThis returns x.")
    'def f(x):\\n    return x\\n'
    >>> extract_code("The function is:\\ndef f(x):\\n    return x\\nIt returns x.")
    'def f(x):\\n    return x\\n'
    >>> extract_code("x = 1")
    'x = 1'
    """
    blocks = [body for tag, body in fenced_blocks(completion) if tag in _PYTHON_TAGS]
    if blocks:
        return next((body for body in blocks if parses(body)), blocks[0])
    if parses(completion):
        return completion
    lines = completion.splitlines()
    start = next((i for i, line in enumerate(lines) if _CODE_START.match(line)), 0)
    return _trim_to_parse(lines[start:]) or "\n".join(lines[start:])


def defines(source: str, name: str) -> bool:
    """True when ``source`` parses and binds ``name`` at module level with def or class.

    >>> defines("import os\\ndef add(a, b):\\n    return a + b", "add"), defines("return 1", "add")
    (True, False)
    """
    tree = _parse(source)
    return tree is not None and any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and node.name == name
        for node in tree.body
    )


def complete_function(prompt_code: str, completion: str, entry_point: str) -> str:
    """The program for a prompt that ends inside a function (HumanEval style).

    A completion that defines ``entry_point`` itself (a chat answer with a fenced block)
    follows the prompt and replaces its stub; otherwise it is the function's body.

    >>> complete_function("def inc(x):\\n", "    return x + 1\\n", "inc")
    'def inc(x):\\n    return x + 1\\n'
    >>> complete_function("def inc(x):\\n    '''doc'''\\n", "```python\\ndef inc(x):\\n    return x + 1\\n```", "inc")
    "def inc(x):\\n    '''doc'''\\n\\ndef inc(x):\\n    return x + 1\\n"
    """
    code = extract_code(completion)
    if defines(code, entry_point):
        return prompt_code.rstrip("\n") + "\n\n" + code
    return prompt_code + completion
