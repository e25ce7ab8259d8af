"""The one exception type users see: a clear message, exit code 2 from the CLI."""


class TrustrlError(Exception):
    """Bad input (config, env id, run directory, checkpoint) named in one message."""


class ConfigError(TrustrlError):
    """A config value, key or preset that does not exist or is out of range."""


class EnvUnavailableError(ConfigError):
    """An env this process cannot make: an unknown id, a module that does not import, a function not given."""


class CheckpointError(TrustrlError):
    """A checkpoint that is missing, corrupt, tampered with, or for another env."""


class WorkerError(TrustrlError):
    """A sampling worker (process or Ray actor) that died or failed; nothing saved is touched."""


class NonFiniteError(TrustrlError):
    """A NaN or infinity from the env or the learner: the update is stopped before it lands (``run.on_nonfinite``)."""


class EnvError(TrustrlError):
    """An env that raised, exited, or returned what its spaces do not allow: named with its copy and the call."""
