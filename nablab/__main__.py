"""``python -m nablab`` runs the command line, like the ``nablab`` script."""

from nablab.cli import main

main()
