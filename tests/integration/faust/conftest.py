"""Fixtures for the Faust worker's tests: the work tests' real tables and pools."""

from tests.integration.work.conftest import db, pool  # noqa: F401
