"""trace: the life of every TCP connection in a pcap/pcapng capture (reader, tracker, Zeek conn.log)."""
