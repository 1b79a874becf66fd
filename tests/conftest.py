"""Fixtures every project test gets."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """Undo what a test's in-process ``rep-server`` did to the root logger.

    ``configure_logging`` points the root handler at the ``sys.stderr`` of the moment, which
    under pytest is a capture stream closed after the test; server threads that outlive the
    test (module fixtures) would then log into it: ``I/O operation on closed file``.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
