"""tcpwise watch: every TCP connection's life on a live host, from kernel tracepoints (docs/watch.md)."""
