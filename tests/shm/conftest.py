"""Fixtures for the shm tests: a unique ring name that is unlinked after the test."""

import pytest
from shm_helpers import Children, unique_name, unlink_quietly


@pytest.fixture
def ring_name():
    name = unique_name()
    yield name
    unlink_quietly(name)


@pytest.fixture
def children():
    with Children() as c:
        yield c
