"""The one error type the CLI turns into a clean message and exit code 2."""


class LabError(Exception):
    """Something a person must fix: says what is wrong and what to do."""

    def __init__(self, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}\n  fix: {self.fix}" if self.fix else self.problem
