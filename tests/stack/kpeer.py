"""Kernel-side peer for the stack interop tests, run inside a namespace with the test's Python.

kpeer.py send PORT N       accept once, send N pattern bytes, FIN, read to EOF, print "sent"
kpeer.py recv PORT         accept once, read to EOF, print "<sha256> <len>"
kpeer.py hold PORT         accept once, keep the connection open until stdin closes
kpeer.py echo-client ADDR PORT N   connect, send N pattern bytes + FIN, read the echo, print sha/len
kpeer.py ping ADDR         one ICMP(v6) echo over a raw socket; print "reply" or "timeout"
kpeer.py udp ADDR          send a UDP datagram to port 9 and wait for ICMP port unreachable
"""

import hashlib
import socket
import struct
import sys


def pattern(n: int) -> bytes:
    block = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(2048))  # 64 KiB
    return (block * (n // len(block) + 1))[:n]


def listener(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port))
    s.listen(8)
    print("ready", flush=True)
    return s


def read_all(c: socket.socket) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    while data := c.recv(1 << 20):
        h.update(data)
        n += len(data)
    return h.hexdigest(), n


def main() -> None:
    cmd = sys.argv[1]
    if cmd == "send":
        s = listener(int(sys.argv[2]))
        data = pattern(int(sys.argv[3]))
        c, _ = s.accept()
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        read_all(c)
        c.close()
        print("sent", flush=True)
    elif cmd == "recv":
        s = listener(int(sys.argv[2]))
        c, _ = s.accept()
        print(*read_all(c), flush=True)
    elif cmd == "hold":
        s = listener(int(sys.argv[2]))
        c, _ = s.accept()
        print("accepted", flush=True)
        sys.stdin.read()
    elif cmd == "echo-client":
        addr, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        c = socket.create_connection((addr, port), timeout=20)
        c.sendall(pattern(n))
        c.shutdown(socket.SHUT_WR)
        print(*read_all(c), flush=True)
    elif cmd == "ping":
        addr = sys.argv[2]
        v6 = ":" in addr
        fam, proto = (socket.AF_INET6, 58) if v6 else (socket.AF_INET, 1)
        s = socket.socket(fam, socket.SOCK_RAW, proto)
        s.settimeout(2)
        typ = 128 if v6 else 8
        msg = bytearray(struct.pack("!BBHHH", typ, 0, 0, 0x77, 1) + b"tcpwise")
        if not v6:  # the kernel fills in the ICMPv6 checksum for raw ICMPv6 sockets
            padded = bytes(msg) + b"\0" * (len(msg) % 2)
            total = sum(struct.unpack(f"!{len(padded) // 2}H", padded))
            total = (total >> 16) + (total & 0xFFFF)
            struct.pack_into("!H", msg, 2, ~(total + (total >> 16)) & 0xFFFF)
        s.sendto(bytes(msg), (addr, 0))
        try:
            while True:
                data, _ = s.recvfrom(2048)
                off = 0 if v6 else (data[0] & 0x0F) * 4
                if data[off] == (129 if v6 else 0) and data[off + 8 :].endswith(b"tcpwise"):
                    print("reply", flush=True)
                    return
        except TimeoutError:
            print("timeout", flush=True)
    elif cmd == "udp":
        addr = sys.argv[2]
        s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.connect((addr, 9))
        s.send(b"hello")
        try:
            s.recv(100)
            print("answered", flush=True)
        except ConnectionRefusedError:
            print("refused", flush=True)
        except TimeoutError:
            print("timeout", flush=True)


if __name__ == "__main__":
    main()
