"""Message templates and advice for every doctor finding, in English and Chinese.

Theory of operation
-------------------
A finding's *message* is a template filled from measured numbers; its *advice* is fixed text per finding id
(or per sysctl-audit item) that must be correct on current Linux. The corrections that matter most, because
folklore gets them wrong (see docs/doctor.md and the timewait-pileup scenario):

- ``net.ipv4.tcp_tw_recycle`` was removed in Linux 4.12 (it broke clients behind NAT); never suggest it.
- ``net.ipv4.tcp_fin_timeout`` is the FIN_WAIT_2 timeout of orphaned sockets; it does NOT shorten TIME_WAIT,
  which is TCP_TIMEWAIT_LEN = 60 s, fixed at compile time (include/net/tcp.h).
- ``net.ipv4.tcp_tw_reuse`` (0/1/2; 2 = loopback only, the default since 5.x) lets *outgoing* connect()
  reuse a TIME_WAIT 4-tuple when TCP timestamps prove the new segments are newer (RFC 7323 PAWS); it does
  nothing for the server side and nothing with ``tcp_timestamps=0``.
- ``SO_LINGER {l_onoff=1, l_linger=0}`` then close() sends RST: no TIME_WAIT, but unsent data is discarded and
  the peer sees "connection reset" — acceptable only when the protocol has already finished.
- CLOSE_WAIT is always the local application's bug: the kernel has the peer's FIN, only close() ends it.
"""

from __future__ import annotations

__all__ = ["MESSAGES", "ADVICE", "message", "advice", "tw_reuse_note"]

MESSAGES: dict[str, tuple[str, str]] = {
    "close-wait-leak": (
        "{comm} (pid {pid}) holds {n} sockets in CLOSE_WAIT{growth}: the peers closed, the application never "
        "called close()",
        "{comm}（pid {pid}）持有 {n} 个 CLOSE_WAIT 套接字{growth}：对端已关闭，应用从未调用 close()",
    ),
    "timewait-ports": (
        "{n} TIME_WAIT sockets from {src} to {dst} use {share:.0%} of the {size} ephemeral ports for that "
        "destination",
        "从 {src} 到 {dst} 的 TIME_WAIT 套接字有 {n} 个，占该目的地可用临时端口（{size} 个）的 {share:.0%}",
    ),
    "accept-queue-overflow": (
        "{comm} (pid {pid}) listener {addr}: accept queue {rq} of backlog {wq}{full}",
        "{comm}（pid {pid}）的监听套接字 {addr}：全连接（accept）队列 {rq}/{wq}{full}",
    ),
    "listen-overflows-seen": (
        "the kernel counted {overflows} accept-queue overflows and {drops} listen drops since boot "
        "(no listener is full right now)",
        "内核自启动以来记录了 {overflows} 次 accept 队列溢出、{drops} 次 listen 丢弃（目前没有已满的监听队列）",
    ),
    "syn-flood": (
        "{n} half-open handshakes (SYN_RCVD) on {addr} of {comm} (pid {pid}), SYN queue limit {limit}"
        "{cookies}",
        "{comm}（pid {pid}）的 {addr} 上有 {n} 个半连接（SYN_RCVD，SYN 队列上限 {limit}）{cookies}",
    ),
    "fd-headroom": (
        "{comm} (pid {pid}) has {fds} of {limit} file descriptors open ({share:.0%}); at the limit accept() "
        "and connect() fail with EMFILE",
        "{comm}（pid {pid}）已打开 {fds}/{limit} 个文件描述符（{share:.0%}）；到达上限后 accept()/connect() "
        "会以 EMFILE 失败",
    ),
    "orphans": (
        "{n} orphaned sockets (closed by their application, still finishing the teardown) of tcp_max_orphans "
        "{limit}",
        "有 {n} 个孤儿套接字（应用已关闭、内核仍在完成挥手），上限 tcp_max_orphans={limit}",
    ),
    "no-keepalive": (
        "{comm} (pid {pid}) has {n} ESTABLISHED sockets idle for more than {idle:g} s without TCP keepalive "
        "(oldest idle {oldest:.0f} s)",
        "{comm}（pid {pid}）有 {n} 个空闲超过 {idle:g} 秒且未开启 TCP keepalive 的 ESTABLISHED 连接"
        "（最久空闲 {oldest:.0f} 秒）",
    ),
    "retransmitting": (
        "{comm} (pid {pid}) keeps retransmitting to {dst}: {n} sockets, up to {retrans} retransmissions "
        "without an answer ({state}) — the peer or the path is gone, likely a half-open connection",
        "{comm}（pid {pid}）一直在向 {dst} 重传：{n} 个套接字，最多重传 {retrans} 次仍无应答（{state}）"
        "——对端或路径已失效，很可能是半开连接",
    ),
    "connect-retrying": (
        "{comm} (pid {pid}) has {n} connect() attempts to {dst} unanswered: the SYN was retransmitted {retrans} "
        "times (not half-open: nothing was established); the kernel gives up after tcp_syn_retries={retries}, "
        "about {give_up:.0f} s after connect(){link}",
        "{comm}（pid {pid}）有 {n} 个到 {dst} 的 connect() 没有得到应答：SYN 已重传 {retrans} 次（这不是半开连接："
        "连接从未建立）；内核在 tcp_syn_retries={retries} 次重传后放弃，即 connect() 之后约 {give_up:.0f} 秒{link}",
    ),
    "close-wait-churn": (
        "{comm} (pid {pid}) churns CLOSE_WAIT: {entered} sockets entered and {left} left in {secs:.0f} s",
        "{comm}（pid {pid}）的 CLOSE_WAIT 在周转：{secs:.0f} 秒内进入 {entered} 个、离开 {left} 个",
    ),
    "close-wait-verdict.leak": (
        "leak in {comm} (pid {pid}) toward peer {peer}: {entered} sockets entered CLOSE_WAIT in {secs:.0f} s "
        "({rin:.1f}/s) and none left",
        "{comm}（pid {pid}）对 {peer} 存在泄漏：{secs:.0f} 秒内有 {entered} 个套接字进入 CLOSE_WAIT（每秒 {rin:.1f} 个），"
        "没有一个离开",
    ),
    "close-wait-verdict.churn": (
        "churn, not a leak: {comm} (pid {pid}) does close them: {entered} entered CLOSE_WAIT and {left} left in "
        "{secs:.0f} s ({rin:.1f}/s in, {rout:.1f}/s out; median {dwell:.0f} ms in CLOSE_WAIT)",
        "是周转而非泄漏：{comm}（pid {pid}）确实会关闭它们：{secs:.0f} 秒内进入 CLOSE_WAIT {entered} 个、离开 {left} 个"
        "（每秒进 {rin:.1f}、出 {rout:.1f}；在 CLOSE_WAIT 中的中位时间 {dwell:.0f} 毫秒）",
    ),
    "close-wait-verdict.slow": (
        "{comm} (pid {pid}) closes fewer than it receives from {peer}: {entered} entered CLOSE_WAIT and {left} "
        "left in {secs:.0f} s ({rin:.1f}/s in, {rout:.1f}/s out)",
        "{comm}（pid {pid}）关闭得比收到的少（对端 {peer}）：{secs:.0f} 秒内进入 CLOSE_WAIT {entered} 个、离开 {left} 个"
        "（每秒进 {rin:.1f}、出 {rout:.1f}）",
    ),
    "timewait-rate.exhaustion": (
        "{rate:.0f} connections/s toward {dst} are closed first by this host: each holds a local port in "
        "TIME_WAIT for 60 s, {steady:.0f} ports at this rate, but the range has {size}: port exhaustion toward "
        "{dst} in ~{eta:.0f} s at this rate",
        "本机每秒主动关闭 {rate:.0f} 个到 {dst} 的连接：每个在 TIME_WAIT 中占用本地端口 60 秒，按此速率需要 {steady:.0f} "
        "个端口，而范围只有 {size} 个：按此速率约 {eta:.0f} 秒后到 {dst} 的端口将耗尽",
    ),
    "timewait-rate.steady": (
        "{rate:.1f} connections/s toward {dst} are closed first by this host: TIME_WAIT will hold ~{steady:.0f} "
        "of the {size} ephemeral ports for that destination at this rate",
        "本机每秒主动关闭 {rate:.1f} 个到 {dst} 的连接：按此速率 TIME_WAIT 将占用该目的地 {size} 个临时端口中的约 "
        "{steady:.0f} 个",
    ),
    "connect-retrying.local-full": (
        "; the destination is the local listener {addr} of {comm} (pid {pid}), whose accept queue is full: it "
        "drops these SYNs (see accept-queue-overflow)",
        "；目的地是本机 {comm}（pid {pid}）的监听套接字 {addr}，其 accept 队列已满，正在丢弃这些 SYN"
        "（见 accept-queue-overflow）",
    ),
    "accept-queue-overflow.local-clients": (
        "; {n} local connect() calls are retrying their SYN toward it (see connect-retrying)",
        "；本机有 {n} 个 connect() 正在向它重传 SYN（见 connect-retrying）",
    ),
    "zero-window": (
        "{n} connections to {comm} (pid {pid}) are stalled by a zero receive window: the receiver does not "
        "read ({rq} bytes waiting unread)",
        "{comm}（pid {pid}）的 {n} 个连接因接收窗口为零而停滞：接收方不读取数据（{rq} 字节未读）",
    ),
    "attribution-reduced": (
        "not running as root: {denied} processes could not be inspected, so sockets of other users are not "
        "attributed to processes",
        "未以 root 运行：有 {denied} 个进程无法检查，其他用户的套接字无法归属到进程",
    ),
}

_SYSCTL_ITEMS: dict[str, tuple[str, str]] = {
    "syncookies-off": (
        "net.ipv4.tcp_syncookies=0: a SYN flood fills the SYN queue and legitimate clients are dropped",
        "net.ipv4.tcp_syncookies=0：SYN 洪泛会占满 SYN 队列，正常客户端被丢弃",
    ),
    "tw-reuse-no-timestamps": (
        "net.ipv4.tcp_tw_reuse={reuse} has no effect because net.ipv4.tcp_timestamps=0",
        "net.ipv4.tcp_tw_reuse={reuse} 不起作用，因为 net.ipv4.tcp_timestamps=0",
    ),
    "tw-buckets-overflow": (
        "TIME_WAIT table overflowed {n} times (tcp_max_tw_buckets={limit}): sockets skipped TIME_WAIT",
        "TIME_WAIT 表已溢出 {n} 次（tcp_max_tw_buckets={limit}）：部分套接字跳过了 TIME_WAIT",
    ),
    "somaxconn-low": (
        "net.core.somaxconn={v} caps every listen() backlog (Linux default is 4096 since 5.4)",
        "net.core.somaxconn={v} 限制了所有 listen() 的 backlog（Linux 5.4 起默认 4096）",
    ),
    "port-range-small": (
        "net.ipv4.ip_local_port_range gives only {size} ephemeral ports per destination",
        "net.ipv4.ip_local_port_range 每个目的地只提供 {size} 个临时端口",
    ),
    "abort-on-overflow": (
        "net.ipv4.tcp_abort_on_overflow=1: clients get RST on a burst instead of a retried handshake",
        "net.ipv4.tcp_abort_on_overflow=1：突发时客户端收到 RST，而不是重试握手",
    ),
}
MESSAGES.update({f"sysctl-audit.{k}": v for k, v in _SYSCTL_ITEMS.items()})

ADVICE: dict[str, tuple[str, str]] = {
    "close-wait-leak": (
        "Fix the application: every code path that sees EOF (read() returns 0) or an error must close() the "
        "socket — look for early returns/exceptions that skip close, and connection pools that never evict "
        "connections the server closed. Kernel settings cannot help: the kernel is waiting for close(). "
        "Until fixed, each leaked socket costs an fd; the process hits its fd limit and accept() fails (EMFILE).",
        "修复应用：所有读到 EOF（read() 返回 0）或出错的路径都必须 close() 套接字——检查跳过 close 的提前返回/"
        "异常，以及从不剔除已被服务端关闭连接的连接池。内核参数无能为力：内核在等应用调用 close()。"
        "修复前每个泄漏的套接字占用一个 fd，进程到达 fd 上限后 accept() 会失败（EMFILE）。",
    ),
    "timewait-ports": (
        "TIME_WAIT lasts 60 s on the side that closes first and blocks reusing that exact 4-tuple. Remedies, best "
        "first: reuse connections (pooling, HTTP keep-alive) instead of one connection per request; "
        "net.ipv4.tcp_tw_reuse=1 lets outgoing connect() reuse TIME_WAIT tuples (client side only, needs "
        "tcp_timestamps=1 on both ends); widen net.ipv4.ip_local_port_range or spread over more destination "
        "IPs/ports; let the server close first; SO_LINGER {1,0} (RST on close) avoids TIME_WAIT but discards "
        "unsent data — only when the protocol is finished. Not remedies: tcp_tw_recycle (removed in Linux 4.12, "
        "broke NAT clients) and tcp_fin_timeout (it times out FIN_WAIT_2, not TIME_WAIT).",
        "TIME_WAIT 在先关闭的一方持续 60 秒，期间同一四元组不能复用。按推荐顺序：复用连接（连接池、HTTP "
        "keep-alive），不要每个请求一个连接；net.ipv4.tcp_tw_reuse=1 允许主动 connect() 复用 TIME_WAIT 四元组"
        "（仅客户端，两端都需 tcp_timestamps=1）；扩大 net.ipv4.ip_local_port_range 或分散到更多目的 IP/端口；"
        "让服务端先关闭；SO_LINGER {1,0}（关闭时发 RST）可避免 TIME_WAIT，但会丢弃未发送数据——仅在协议已完成时"
        "使用。无效做法：tcp_tw_recycle（Linux 4.12 已删除，曾导致 NAT 后的客户端连接失败）和 tcp_fin_timeout"
        "（它控制 FIN_WAIT_2，不是 TIME_WAIT）。",
    ),
    "accept-queue-overflow": (
        "The application does not accept() as fast as handshakes complete. Accept faster (more workers, an accept "
        "loop that never blocks on work), and if bursts are legitimate raise the backlog: the effective value is "
        "min(listen(backlog), net.core.somaxconn), so raise both. Keep tcp_abort_on_overflow=0 so clients retry "
        "instead of seeing RST. Watch ListenOverflows/ListenDrops in /proc/net/netstat.",
        "应用 accept() 的速度跟不上握手完成的速度。加快 accept（更多 worker，accept 循环不被业务阻塞）；若突发"
        "合理则调大 backlog：实际值为 min(listen(backlog), net.core.somaxconn)，两者都要调。保持 "
        "tcp_abort_on_overflow=0，让客户端重试而不是收到 RST。关注 /proc/net/netstat 中的 ListenOverflows/"
        "ListenDrops。",
    ),
    "listen-overflows-seen": (
        "Some listener overflowed its accept queue in the past. Run `tcpwise top` or the exporter during the "
        "next burst to see which one; the remedies are those of accept-queue-overflow.",
        "过去某个监听套接字的 accept 队列溢出过。在下一次突发时运行 `tcpwise top` 或 exporter 找出是哪一个；"
        "处理办法同 accept-queue-overflow。",
    ),
    "syn-flood": (
        "Many handshakes are stuck after SYN-ACK (the SYN queue, '半连接队列'). If the sources are spoofed this is "
        "a SYN flood: keep net.ipv4.tcp_syncookies=1 (the default) so the kernel answers with cookies when the "
        "queue is full, and filter upstream. If clients are real but slow, raise the listen backlog (the SYN queue "
        "limit follows it, capped by net.core.somaxconn) and check net.ipv4.tcp_synack_retries.",
        "大量握手停在 SYN-ACK 之后（SYN 队列，即“半连接队列”）。若源地址是伪造的，这是 SYN 洪泛：保持 "
        "net.ipv4.tcp_syncookies=1（默认），队列满时内核改用 SYN cookie 应答，并在上游过滤。若客户端真实但慢，"
        "调大 listen backlog（SYN 队列上限随之变化，受 net.core.somaxconn 限制），并检查 "
        "net.ipv4.tcp_synack_retries。",
    ),
    "fd-headroom": (
        "Raise the process's soft RLIMIT_NOFILE (systemd LimitNOFILE=, `ulimit -n`, or setrlimit at start-up; "
        "the hard limit and fs.nr_open cap it) — but first check that the fds are not leaking (see "
        "close-wait-leak): a leak only moves the cliff.",
        "调高进程的软限制 RLIMIT_NOFILE（systemd 的 LimitNOFILE=、`ulimit -n` 或启动时 setrlimit；受硬限制和 "
        "fs.nr_open 约束）——但先确认 fd 没有泄漏（见 close-wait-leak）：泄漏只会推迟问题。",
    ),
    "orphans": (
        "Orphans are sockets the application already closed; the kernel finishes the FIN exchange alone. Many in "
        "FIN_WAIT_2 mean peers that never send their FIN: net.ipv4.tcp_fin_timeout (default 60 s) bounds exactly "
        "that state. Many in FIN_WAIT_1/LAST_ACK mean peers that stopped ACKing: net.ipv4.tcp_orphan_retries "
        'bounds them. Over tcp_max_orphans the kernel resets orphans ("too many orphaned sockets").',
        "孤儿套接字是应用已关闭、由内核独自完成 FIN 交换的套接字。FIN_WAIT_2 多说明对端迟迟不发 FIN：正是 "
        "net.ipv4.tcp_fin_timeout（默认 60 秒）限制这个状态。FIN_WAIT_1/LAST_ACK 多说明对端不再 ACK：由 "
        "net.ipv4.tcp_orphan_retries 限制。超过 tcp_max_orphans 时内核会重置孤儿套接字。",
    ),
    "no-keepalive": (
        "An idle connection without keepalive never learns that its peer vanished (crash, NAT/firewall idle "
        "timeout): it stays ESTABLISHED forever and the next write fails late. Enable SO_KEEPALIVE and set "
        "TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT below the shortest middlebox idle timeout (the system default "
        "tcp_keepalive_time is 7200 s), or use application heartbeats / a pool idle timeout that closes them.",
        "未开启 keepalive 的空闲连接永远发现不了对端已消失（崩溃、NAT/防火墙空闲超时）：它会一直保持 "
        "ESTABLISHED，直到下次写入才迟迟失败。开启 SO_KEEPALIVE，并把 TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT "
        "设得低于最短的中间设备空闲超时（系统默认 tcp_keepalive_time 为 7200 秒），或使用应用层心跳/连接池空闲"
        "超时主动关闭。",
    ),
    "retransmitting": (
        "Data is unacknowledged and being retransmitted with exponential backoff: the peer crashed, rebooted "
        "(it will answer RST once reached) or the path drops packets. Linux gives up after net.ipv4.tcp_retries2 "
        "(default 15, ~15 minutes); set TCP_USER_TIMEOUT on the socket to fail such connections in seconds, "
        "and check the peer and the path.",
        "数据未被确认，正在以指数退避重传：对端崩溃、重启（一旦收到会回 RST）或路径丢包。Linux 在 "
        "net.ipv4.tcp_retries2（默认 15，约 15 分钟）后才放弃；在套接字上设置 TCP_USER_TIMEOUT 可在数秒内让此类"
        "连接失败，并检查对端与网络路径。",
    ),
    "close-wait-churn": (
        "Not a leak: the application closes these sockets, only after its peers do (the time in CLOSE_WAIT is "
        "how long it takes to notice EOF and close). Each costs an fd meanwhile; if that time is long, look at "
        "how soon the code reacts to EOF (read() returning 0).",
        "不是泄漏：应用会关闭这些套接字，只是晚于对端（在 CLOSE_WAIT 中的时间就是它发现 EOF 并关闭所用的时间）。"
        "期间每个占用一个 fd；若时间很长，检查代码对 EOF（read() 返回 0）的反应速度。",
    ),
    "connect-retrying": (
        "No SYN-ACK came back. connect() retransmits the SYN with exponential backoff (1, 2, 4, ... s) and fails "
        "with ETIMEDOUT only after net.ipv4.tcp_syn_retries retransmissions (6 by default: about 127 s). Check "
        "that the destination is up and reachable (a firewall dropping SYNs, a wrong address, a full accept "
        "queue at the server); give connect() its own timeout in the application (or TCP_SYNCNT per socket) "
        "instead of waiting two minutes. Lowering tcp_syn_retries host-wide affects every connection.",
        "没有收到 SYN-ACK。connect() 以指数退避（1、2、4……秒）重传 SYN，直到 net.ipv4.tcp_syn_retries 次重传后才以 "
        "ETIMEDOUT 失败（默认 6 次，约 127 秒）。检查目的地是否在线、可达（防火墙丢弃 SYN、地址错误、服务端 accept "
        "队列已满）；在应用中给 connect() 设置超时（或按套接字设置 TCP_SYNCNT），不要等两分钟。全局调低 "
        "tcp_syn_retries 会影响所有连接。",
    ),
    "zero-window": (
        "The receiving application is not reading: its receive buffer is full, it advertises a zero window and "
        "the sender only sends window probes. Fix the reader (blocked event loop, slow consumer); bigger buffers "
        "only delay the stall.",
        "接收方应用没有读取数据：接收缓冲区已满，通告零窗口，发送方只能发送窗口探测。修复读取方（事件循环被阻塞、"
        "消费者过慢）；加大缓冲区只会推迟停滞。",
    ),
    "attribution-reduced": (
        "Run as root (sudo tcpwise doctor) to attribute every socket to its process. Counts and findings without a "
        "pid are complete either way.",
        "以 root 运行（sudo tcpwise doctor）才能把所有套接字归属到进程。状态计数和不涉及进程的发现不受影响。",
    ),
    "sysctl-audit.syncookies-off": (
        "Set net.ipv4.tcp_syncookies=1 (the default): cookies are only used when the SYN queue overflows.",
        "设置 net.ipv4.tcp_syncookies=1（默认值）：只有 SYN 队列溢出时才会使用 cookie。",
    ),
    "sysctl-audit.tw-reuse-no-timestamps": (
        "tcp_tw_reuse relies on TCP timestamps (RFC 7323) to tell old from new segments; keep "
        "net.ipv4.tcp_timestamps=1.",
        "tcp_tw_reuse 依赖 TCP 时间戳（RFC 7323）区分新旧报文；请保持 net.ipv4.tcp_timestamps=1。",
    ),
    "sysctl-audit.tw-buckets-overflow": (
        "Too many TIME_WAIT sockets: reuse connections (pooling, keep-alive) rather than raising "
        "tcp_max_tw_buckets; skipping TIME_WAIT removes its protection against old duplicates.",
        "TIME_WAIT 过多：应复用连接（连接池、keep-alive），而不是调大 tcp_max_tw_buckets；跳过 TIME_WAIT 会失去"
        "它对旧重复报文的保护。",
    ),
    "sysctl-audit.somaxconn-low": (
        "Raise net.core.somaxconn (e.g. 4096) if a server needs a larger listen backlog.",
        "若服务需要更大的 listen backlog，调大 net.core.somaxconn（例如 4096）。",
    ),
    "sysctl-audit.port-range-small": (
        "Widen net.ipv4.ip_local_port_range (e.g. 1024 65535, keeping listening ports out via "
        "ip_local_reserved_ports) if this host opens many outgoing connections to one destination.",
        "若本机向同一目的地发起大量连接，扩大 net.ipv4.ip_local_port_range（例如 1024 65535，并用 "
        "ip_local_reserved_ports 排除监听端口）。",
    ),
    "sysctl-audit.abort-on-overflow": (
        "Prefer net.ipv4.tcp_abort_on_overflow=0 (the default): the client's handshake is retried when the accept "
        "queue has room again.",
        "建议 net.ipv4.tcp_abort_on_overflow=0（默认）：accept 队列有空间后客户端握手会被重试。",
    ),
}


def tw_reuse_note(reuse: str | None, loopback: bool, dst: str, lang: str) -> str:
    """What ``net.ipv4.tcp_tw_reuse`` already does for this destination (0, 1, or 2 = loopback only, the
    default): the generic advice must not tell a user to switch on what is already on."""
    zh = lang == "zh"
    if reuse == "2" and loopback:
        return (
            f"这里 tcp_tw_reuse=2（默认值）已允许向本机回环目的地 {dst} 的 connect() 复用 TIME_WAIT 端口（需时间戳，且 "
            "TIME_WAIT 已超过 1 秒）；仍然堆积说明新连接开得太快：复用连接。"
            if zh
            else f"Here tcp_tw_reuse=2 (the default) already lets connect() reuse these TIME_WAIT ports toward the "
            f"loopback destination {dst} (with timestamps, once a TIME_WAIT is older than 1 s); that they still "
            "pile up means connections are opened faster than that: reuse connections."
        )
    if reuse == "2":
        return (
            f"这里 tcp_tw_reuse=2（默认值）只对回环地址生效；向 {dst} 复用需设为 1（仅客户端，两端都需时间戳）。"
            if zh
            else f"Here tcp_tw_reuse=2 (the default) applies to loopback only; toward {dst} it takes "
            "net.ipv4.tcp_tw_reuse=1 (client side, timestamps on both ends)."
        )
    if reuse == "1":
        return (
            "这里 tcp_tw_reuse=1 已开启：只有 TIME_WAIT 超过 1 秒且两端都有时间戳的端口才能复用；仍然堆积说明连接开得太快。"
            if zh
            else "Here tcp_tw_reuse=1 is already on: only TIME_WAIT ports older than 1 s, with timestamps on both "
            "ends, are reused; that they still pile up means connections are opened faster than that."
        )
    return ""


def message(key: str, lang: str, **values: object) -> str:
    """The filled message template for finding ``key`` in ``lang`` ("en" or "zh")."""
    en, zh = MESSAGES[key]
    return (zh if lang == "zh" else en).format(**values)


def advice(key: str, lang: str) -> str:
    """The advice text for finding ``key`` in ``lang``."""
    en, zh = ADVICE[key]
    return zh if lang == "zh" else en
