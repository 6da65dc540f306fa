"""`python -m hecate` runs the CLI."""

from hecate.cli.entry import main

main()
