import os

import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests run two at a time on two cores: one torch thread each."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _minari_root(tmp_path_factory):
    """No test writes Minari datasets into the home directory (tests that use one set their own root)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(tmp_path_factory.mktemp("minari-session")))
        yield
