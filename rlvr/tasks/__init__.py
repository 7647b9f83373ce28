"""Tasks: RL datasets that turn rows into problems and grade completions.

Importing this package imports every module in it, so that each task's ``@register_task``
(and any reward its file registers) is in the registries: a new task is one new file. What a
task is made of, and the registry itself, live in ``rlvr.tasks.base``; each task file owns
its prompt template, answer parser and checker.
"""

from rlvr.discovery import import_submodules

import_submodules(__name__, __path__)
