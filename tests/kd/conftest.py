import pytest

import kdsim


@pytest.fixture(scope="session")
def x64():
    return kdsim.boot("win7-x64", ram="256m", scenario="none")


@pytest.fixture(scope="session")
def x86():
    return kdsim.boot("win7-x86", ram="256m", scenario="none")
