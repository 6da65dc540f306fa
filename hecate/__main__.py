"""`python -m hecate` runs the CLI."""

from hecate.cli.main import main

main()
