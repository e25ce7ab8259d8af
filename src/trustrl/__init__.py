"""trustrl: trust-region policy gradients (TRPO + GAE and its family) for any gymnasium environment."""

__version__ = "0.1.0"
