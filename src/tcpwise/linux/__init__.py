"""Read-only interfaces to the live Linux host, shared by doctor, watch and lab.

- :mod:`tcpwise.linux.netlink` — a fast NETLINK_SOCK_DIAG client (every TCP socket of a namespace in one dump);
- :mod:`tcpwise.linux.procfs` — socket inode -> process attribution, fd counts and limits from /proc;
- :mod:`tcpwise.linux.kernel` — TCP counters, sysctls and entering a network namespace;
- :mod:`tcpwise.linux.tracefs` and :mod:`tcpwise.linux.ringbuf` — a private tracefs instance and the decoder of
  its binary per-CPU ring buffer pages.

This layer sits above ``vocab``/``errors``/``events``/``wire`` and below every app: it never writes to the
system except to create and remove its own tracefs instance.
"""
