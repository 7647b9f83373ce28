import pytest

from sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox():
    box = Sandbox()
    yield box
    box.close()
