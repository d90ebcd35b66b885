"""fundtrack: trace money for UNSCR 1325 from pledge to beneficiary."""

__version__ = "0.1.0"
