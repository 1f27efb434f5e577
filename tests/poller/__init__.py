"""poller tests."""
