"""WhatsApp Business Platform Cloud API notifier (adapter, mapping, simulator)."""
