"""One exception type, so callers (CLI, in-situ callback) can turn our failures into one clear line."""


class LammpsPhaseError(ValueError):
    """Bad input or state, with a message that names the problem and the fix."""
