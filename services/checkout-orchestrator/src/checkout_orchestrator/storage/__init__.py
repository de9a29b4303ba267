"""The orchestrator's tables and the queries on them: saga rows ↔ the rules' :class:`Saga`."""
