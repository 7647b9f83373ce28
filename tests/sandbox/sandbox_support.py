"""What the sandbox tests share: their own jail uid, and what counts as a leak.

Other sessions on the machine run jails as `nobody` too; a uid picked per test session keeps
`jailed_processes` from counting theirs. (Not in conftest.py: every directory's conftest is
imported as the module `conftest`.)
"""

from __future__ import annotations

import os
from pathlib import Path

JAIL_UID = 60000 + os.getpid() % 5000


def jailed_processes(uid: int = JAIL_UID) -> set[int]:
    """Processes running as `uid` outside, less the zygotes themselves (nsjail's children):
    what a program started, and what would be a leak once its run is over."""
    found = set()
    for pid in owned_by(uid):
        try:
            parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            if Path(f"/proc/{parent}/comm").read_text().strip() != "nsjail":
                found.add(pid)
        except OSError:
            pass
    return found


def owned_by(uid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    found.add(int(entry))
            except OSError:
                pass
    return found
