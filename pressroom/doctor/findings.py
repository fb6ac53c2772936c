"""One finding of ``pressroom doctor``: ok, advice, or a problem, each with a hint for whoever can fix it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Finding", "advice", "ok", "problem"]


@dataclass(frozen=True)
class Finding:
    """The outcome of one check: ``ok`` with what was verified, or a problem with a hint."""

    check: str
    ok: bool
    message: str
    hint: str = ""
    advice: bool = False  # ok, but worth doing: printed with its hint, never a failure

    def line(self) -> str:
        """One line for the terminal: ``ok  smtp: ...``, ``advice  ...`` or ``PROBLEM  smtp: ... (hint: ...)``."""
        hint = f" (hint: {self.hint})" if self.hint else ""
        if self.ok and not self.advice:
            return f"ok       {self.check}: {self.message}"
        return f"{'advice ' if self.ok else 'PROBLEM'}  {self.check}: {self.message}{hint}"


def ok(check: str, message: str) -> Finding:
    return Finding(check, True, message)


def advice(check: str, message: str, hint: str) -> Finding:
    """Not a failure, but worth doing (optional records, a policy still in test mode)."""
    return Finding(check, True, message, hint, advice=True)


def problem(check: str, message: str, hint: str) -> Finding:
    return Finding(check, False, message, hint)
