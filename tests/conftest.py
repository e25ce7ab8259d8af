import os

import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests run two at a time on two cores: one torch thread each."""
    torch.set_num_threads(1)
