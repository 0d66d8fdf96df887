"""``python -m distill`` runs the command line."""

from .cli import main

main()
