import pytest
from sandbox_support import JAIL_UID


@pytest.fixture(scope="session")
def sandbox():
    """The session's sandbox, jailing as a uid of its own (see sandbox_support)."""
    from sandbox import Sandbox

    with Sandbox(uid=JAIL_UID) as box:
        yield box
