"""fundtrack: trace money for UNSCR 1325 from pledge to beneficiary."""

from fundtrack.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
