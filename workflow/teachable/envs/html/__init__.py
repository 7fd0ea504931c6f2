"""The HTML-extraction family's parts: ``sandbox``, where an agent's Python runs (``run_sandboxed``;
``teachable sandbox-run`` on the command line); ``tasks`` and ``archetypes``, the generated pages,
questions and ground truth; ``grading``, the reward and the one success definition; ``grammar``,
the one-line bs4 programs G and their interpreter in process (``parse_g``, ``run_in_process``,
``menu_programs``); ``actions``, the canonical JSON action line and its parser (``parse_action``);
``cache``, sandbox results by content (``ResultCache``); ``space``, the actions as generic code sees
them, at a state or not (``HTMLActionSpace``, ``StateActionSpace``); ``diagnosis``, the oracle
teacher's words; ``env``, the ``HTMLExtractEnv`` that ties them together; ``family`` / ``metrics``,
what the registry lists."""
