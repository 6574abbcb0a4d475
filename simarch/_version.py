"""The package version, in one place (read by the build and by every report)."""

__version__ = "0.1.0"
