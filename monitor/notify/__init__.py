"""Alert sinks, one module per sink, and the outbox dispatcher that feeds them."""
