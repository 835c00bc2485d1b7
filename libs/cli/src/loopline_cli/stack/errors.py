"""What can go wrong when the stack starts, each with a message that fits one line."""

from __future__ import annotations


class StackError(Exception):
    """Base of every stack failure; ``str(error)`` is the one-line message to print."""


class PrerequisiteMissing(StackError):
    def __init__(self, part: str, what: str, hint: str = "") -> None:
        self.part, self.what = part, what
        suffix = f" ({hint})" if hint else ""
        super().__init__(f"{part}: missing prerequisite {what}{suffix}")


class PortInUse(StackError):
    def __init__(self, part: str, port_name: str, port: int) -> None:
        self.part, self.port_name, self.port = part, port_name, port
        super().__init__(
            f"{part}: port {port} ({port_name}) is already in use by another process; "
            f"free it or choose another with --{port_name}-port"
        )


class StartFailed(StackError):
    """A part did not become ready; carries the tail of its log."""

    def __init__(self, part: str, reason: str, log_tail: str = "") -> None:
        self.part, self.reason, self.log_tail = part, reason, log_tail
        super().__init__(f"{part}: {reason}")

    def detailed(self) -> str:
        if not self.log_tail:
            return str(self)
        return f"{self}\n--- last lines of the {self.part} log ---\n{self.log_tail}"
