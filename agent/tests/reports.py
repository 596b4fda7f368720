"""What the install state machine reports, collected the way the daemon queues status records."""

from __future__ import annotations

from gridfleet_agent.installers.runner import InstallJob


class Reports(list[tuple[str, str, str]]):
    """Collects (step, code, message) the way the daemon queues status records; logs aside."""

    def __init__(self) -> None:
        super().__init__()
        self.logs: list[str] = []

    def __call__(self, job: InstallJob, step: str, *, code: str = "", message: str = "", log: str = "") -> None:
        self.append((step, code, message))
        self.logs.append(log)

    @property
    def steps(self) -> list[str]:
        return [step for step, _, _ in self]
