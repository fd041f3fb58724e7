"""Keep every test's models and figures out of the course's own artifacts/ folder, close the
figures each test opened, and make the property tests draw the same examples on every run."""

import os
import sys

import pytest

try:
    from hypothesis import settings
except ImportError:  # .venv-colab/ has Colab's packages only; its tests draw no examples
    settings = None

# "repeatable" (the default): hypothesis derives its examples from each test's name, so a run
# that passed passes again on any machine, CI's included; HYPOTHESIS_PROFILE=explore draws new
# ones each run (hypothesis's own default), to look for a counterexample on purpose.
if settings is not None:
    settings.register_profile("repeatable", derandomize=True)
    settings.register_profile("explore", derandomize=False)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(scope="session", autouse=True)
def separate_artifacts(tmp_path_factory):
    """`./run test` sets COURSE_ARTIFACTS; a bare `pytest` gets a temporary folder instead."""
    if "COURSE_ARTIFACTS" not in os.environ:
        os.environ["COURSE_ARTIFACTS"] = str(tmp_path_factory.mktemp("artifacts"))
    yield


@pytest.fixture(autouse=True)
def close_figures():
    """Close every pyplot figure a test left open (matplotlib warns past 20, and keeps them)."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
