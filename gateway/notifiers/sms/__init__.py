"""SMS notifier in the Twilio Programmable Messaging dialect (adapter, mapping, simulator)."""
