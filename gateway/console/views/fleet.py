"""The console's fleet pages."""
