"""The HTML-extraction family's parts. So far: ``sandbox``, where an agent's Python runs
(``run_sandboxed``; ``teachable sandbox-run`` on the command line)."""
