"""The console's queues pages."""
