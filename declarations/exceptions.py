"""One flat exception tree. Each error carries the anomaly code it stands for,
so that a channel can turn it into a documented answer without guessing."""

from __future__ import annotations


class DeclarationsError(Exception):
    """Base of every error the engine raises on purpose."""

    code: str = ""

    def __init__(self, message: str, *, code: str | None = None, location: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.location = location

    def __str__(self) -> str:
        where = f" at {self.location}" if self.location else ""
        prefix = f"{self.code}: " if self.code else ""
        return f"{prefix}{self.message}{where}"


class InputRefused(DeclarationsError, ValueError):
    """Outside input that cannot be processed further (C009, C010, B00x...)."""


class MalformedXml(InputRefused):
    code = "C009"


class TooLarge(InputRefused):
    code = "C010"


class SignatureError(InputRefused):
    """A signature problem; ``code`` is S001 (none) or S002 (bad / off-profile)."""

    code = "S002"


class SettingsError(DeclarationsError):
    """An unusable setting (the command line exits with 2)."""


class DirectoryRefused(DeclarationsError, ValueError):
    """A Directory document that cannot be loaded."""
