"""The decoder simulators' parts: shared core, one player per protocol (see ``..simulate``)."""
