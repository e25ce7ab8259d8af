"""Running training: the loop, what it records, and the two ways in (online, from a dataset), fresh or resumed."""

from trustrl.run.training import TrainResult, resume, train, train_offline

__all__ = ["TrainResult", "resume", "train", "train_offline"]
