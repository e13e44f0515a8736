"""The running service: the log, the fold, the hub and what keeps them in step."""
