"""Where a run's numbers are mirrored besides its own files: the TensorBoard hparams view and Weights & Biases.

Both get the resolved config as flat ``section.key`` hyper-parameters; W&B also
gets every row that goes to metrics.csv and timing.csv, under the same tags as
TensorBoard (``train/*``, ``eval/*``, ``time/*``). A mirror never feeds back
into training: metrics.csv is the same with or without one.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from trustrl.errors import TrustrlError

Scalar = int | float | str | bool


def flat_params(config: dict[str, Any]) -> dict[str, Scalar]:
    """``{"algo": {"max_kl": 0.01}}`` -> ``{"algo.max_kl": 0.01}``; lists and tables become their text."""
    flat: dict[str, Scalar] = {}
    for key, value in config.items():
        if isinstance(value, dict) and key != "kwargs":
            for name, item in flat_params(value).items():
                flat[f"{key}.{name}"] = item
        elif isinstance(value, (int, float, str, bool)):
            flat[key] = value
        else:
            flat[key] = str(value)
    return flat


def write_hparams(writer: Any, params: dict[str, Scalar], metrics: list[str], config_text: str) -> None:
    """The config in TensorBoard's HPARAMS tab (scored by ``metrics``, scalar tags of the run) and as text."""
    from torch.utils.tensorboard.summary import hparams

    experiment, start, end = hparams(params, {tag: 0.0 for tag in metrics})
    for summary in (experiment, start, end):
        writer.file_writer.add_summary(summary)
    writer.add_text("config", "```toml\n" + config_text + "```")


class WandbMirror:
    """One W&B run per trustrl run, in ``<run_dir>/wandb``; a resumed trustrl run continues the same W&B run.

    W&B's own settings apply as they always do (``WANDB_MODE=offline``, ``WANDB_API_KEY``, ...).
    """

    ID_FILE = "trustrl-run-id"

    def __init__(self, run_dir: Path, name: str, params: dict[str, Scalar], project: str, entity: str, group: str,
                 resumed: bool, quiet: bool = False):
        import wandb  # the config checked that it is installed

        folder = run_dir / "wandb"
        folder.mkdir(exist_ok=True)
        id_file = folder / self.ID_FILE
        run_id = id_file.read_text().strip() if resumed and id_file.is_file() else secrets.token_hex(4)
        id_file.write_text(run_id + "\n")
        try:
            self.run = wandb.init(
                project=project, entity=entity or None, group=group or None, name=f"{name} ({run_dir.name})",
                dir=str(run_dir), id=run_id, resume="allow", config=params, reinit="create_new",
                settings=wandb.Settings(console="off", silent=quiet),  # trustrl's own output is not W&B's to capture
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 -- no network, no login, a bad entity: W&B's reason in one line
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrustrlError(f"cannot start the Weights & Biases run ({detail}); WANDB_MODE=offline records "
                               "it on disk without an account") from None

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()
