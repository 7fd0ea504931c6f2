"""``python -m teachable``: the same CLI as the ``teachable`` command (rules call it this way,
through the interpreter that runs Snakemake, so an activated environment is never needed)."""

from .cli import main

main()
