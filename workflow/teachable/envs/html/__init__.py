"""The HTML-extraction family's parts: ``sandbox``, where an agent's Python runs (``run_sandboxed``;
``teachable sandbox-run`` on the command line); ``grammar``, the one-line bs4 programs G and their
interpreter in process (``parse_g``, ``run_in_process``, ``menu_programs``); ``actions``, the
canonical JSON action line and its parser (``parse_action``); ``cache``, sandbox results by
content (``ResultCache``)."""
