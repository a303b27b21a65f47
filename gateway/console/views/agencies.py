"""The console's agencies pages."""
