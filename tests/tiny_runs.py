"""A run of a couple of updates: enough for a checkpoint to load, edit or resume, in about a second."""

from trustrl import config
from trustrl.run import train

TINY = ["run.total_steps=512", "run.n_steps=256", "run.eval_every=0"]


def tiny_run(tmp_path_factory, preset: str = "cartpole-trpo"):
    """A finished run of ``preset`` in a fresh temporary folder."""
    run = tmp_path_factory.mktemp("runs") / preset
    train(config.load(preset, TINY), run, progress=False)
    return run
