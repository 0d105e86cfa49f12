import pytest

from kdsim.nt.profiles import PROFILE_NAMES
from kdsim.nt.types import TypeSystem
from tests.nt.helpers import FakeMemory


@pytest.fixture
def mem():
    return FakeMemory()


@pytest.fixture(params=PROFILE_NAMES)
def target(request):
    return request.param


@pytest.fixture
def ts(target):
    return TypeSystem(target)
