"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input or a missing prerequisite: the message names what is wrong and the fix."""

    exit_code = 2


class ConfigError(UserError):
    def __init__(self, field: str, problem: str, fix: str = "") -> None:
        self.field = field
        message = f"config field '{field}': {problem}"
        if fix:
            message += f" — {fix}"
        super().__init__(message)


class ToolMissing(UserError):
    """A binary the project installs (Anvil, solc) is not where it should be."""


class ChainStalled(UserError):
    """The network stopped including the driver's own transactions: nothing a run can measure."""


class CoordinatorFailed(UserError):
    """A coordinator call the node refused or reverted: the run cannot go on, and says which."""

    exit_code = 1

    def __init__(self, step: str, words: str) -> None:
        super().__init__(f"the coordinator's {step} failed: {words}")
        self.step, self.words = step, words
