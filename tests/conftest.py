import pytest
import torch


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


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray (2 CPUs, no dashboard) for the whole test run; tests using it share one xdist group."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()
