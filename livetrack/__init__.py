"""livetrack: live race tracking."""
