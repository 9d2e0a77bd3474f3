"""The batch inbox channel: ``declarations batch put|run`` (the service is services/batch.py)."""
