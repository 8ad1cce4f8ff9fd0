"""Log parsing, discovery, error grouping and request tracing."""
