"""Importing every module of a registry package, so that their decorators fill the registry.

Owns only that loop. ``rlvr.tasks`` and ``rlvr.rewards`` call it from their ``__init__``:
adding a task or a reward is then one new file with one decorator, and no list to extend.
``tests/test_layout.py`` treats a package that calls it as importing each of its modules.
"""

import importlib
import pkgutil
from collections.abc import Iterable


def import_submodules(package: str, path: Iterable[str]) -> None:
    """Import each module directly under ``package`` (whose ``__path__`` is ``path``), in name order.

    Name order makes the registries, and the task union of ``rlvr.spec`` built from one,
    the same on every machine.
    """
    for module in sorted(pkgutil.iter_modules(path), key=lambda found: found.name):
        importlib.import_module(f"{package}.{module.name}")
