"""The console's services pages."""
