"""Fixtures for the watch tests (helpers in watch_helpers.py): private network namespaces, deleted after use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from watch_helpers import Netns, del_netns, new_netns


@pytest.fixture
def netns() -> Iterator[Netns]:
    ns = new_netns()
    try:
        yield ns
    finally:
        del_netns(ns)


@pytest.fixture
def netns_pair() -> Iterator[tuple[Netns, Netns]]:
    a = new_netns()
    b = new_netns()
    try:
        yield a, b
    finally:
        del_netns(a)
        del_netns(b)
