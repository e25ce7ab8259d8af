"""Minari datasets: :mod:`read <trustrl.datasets.read>` them, :mod:`collect <trustrl.datasets.collect>` them."""

from trustrl.datasets.read import LOG_PROB_KEY, PARAM_PREFIX, Episode, OfflineData, check_dataset_fits, read_dataset

__all__ = ["LOG_PROB_KEY", "PARAM_PREFIX", "Episode", "OfflineData", "check_dataset_fits", "read_dataset"]
