"""The console's requests pages."""
