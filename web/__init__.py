"""The hall on the web: the gateway between the broker and browsers, integrations and webhooks."""
