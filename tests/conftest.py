"""Keep every test's models and figures out of the course's own artifacts/ folder."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def separate_artifacts(tmp_path_factory):
    """`./run test` sets COURSE_ARTIFACTS; a bare `pytest` gets a temporary folder instead."""
    if "COURSE_ARTIFACTS" not in os.environ:
        os.environ["COURSE_ARTIFACTS"] = str(tmp_path_factory.mktemp("artifacts"))
    yield
