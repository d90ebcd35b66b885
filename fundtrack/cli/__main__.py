"""``python -m fundtrack.cli``: the command line in a fresh process (tests, subprocess runs)."""

from fundtrack.cli import main

main()
