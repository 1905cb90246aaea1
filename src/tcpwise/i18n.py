"""The message catalogue: every user-visible phrase tcpwise builds itself, in English and Chinese.

Two kinds of text live here: the *frame* of the renderers (headings, column names, "lost", "passed"), and the
sentence an event stands for (:func:`event_text`: ``connect() returns``, ``recv() 1000 bytes``, ``idle 10 s:
close()``, a drop's reason), built from the event's typed fields so that checks never parse it back. What a
scenario says — check claims, narratives — comes translated inside the :class:`tcpwise.events.Run` itself
(``Check.claim_zh``, ``summary["text_zh"]``), because those sentences quote numbers measured in the run. State
names, flag letters, call names (``connect()``) and errno names are never translated: they are the RFC's, the
kernel's and the C library's vocabulary, and users grep for them.
"""

from __future__ import annotations

from typing import Any

from tcpwise.errors import UsageError
from tcpwise.events import Event
from tcpwise.vocab import AppCall, AppWhy, DropReason, EventKind

__all__ = ["LANGS", "label", "check_claim", "narrative", "check_lang", "event_text", "num"]

LANGS = ("en", "zh")

_LABELS: dict[str, dict[str, str]] = {
    "time": {"en": "time", "zh": "时间"},
    "time_s": {"en": "t (s)", "zh": "时间 (秒)"},
    "checks": {"en": "Checks", "zh": "检查"},
    "summary": {"en": "Narrative", "zh": "说明"},
    "parameters": {"en": "Parameters", "zh": "参数"},
    "values": {"en": "Measured values", "zh": "测量值"},
    "state_timeline": {"en": "State timeline", "zh": "状态时间线"},
    "diagram": {"en": "Sequence diagram", "zh": "时序图"},
    "series": {"en": "Time series", "zh": "时间序列"},
    "passed": {"en": "all checks pass", "zh": "全部检查通过"},
    "failed": {"en": "checks failing", "zh": "有检查未通过"},
    "pass": {"en": "pass", "zh": "通过"},
    "fail": {"en": "FAIL", "zh": "未通过"},
    "no_checks": {"en": "no checks", "zh": "无检查"},
    "lost": {"en": "lost", "zh": "丢失"},
    "arrives": {"en": "arr", "zh": "到达"},
    "in_flight": {"en": "in flight at end", "zh": "结束时仍在途中"},
    "timer": {"en": "timer", "zh": "定时器"},
    "host": {"en": "Host", "zh": "主机"},
    "state": {"en": "State", "zh": "状态"},
    "conn": {"en": "Connection", "zh": "连接"},
    "from": {"en": "From", "zh": "从"},
    "to": {"en": "To", "zh": "到"},
    "duration": {"en": "Time in state", "zh": "停留时间"},
    "until_end": {"en": "until end of run", "zh": "直到运行结束"},
    "name": {"en": "Name", "zh": "名称"},
    "value": {"en": "Value", "zh": "值"},
    "claim": {"en": "Claim", "zh": "论断"},
    "measured": {"en": "Measured", "zh": "测量"},
    "world": {"en": "world", "zh": "环境"},
    "seed": {"en": "seed", "zh": "种子"},
    "gallery": {"en": "tcpwise scenario gallery", "zh": "tcpwise 场景库"},
    "gallery_intro": {
        "en": "Every claim of the catalogue, run in the simulator and checked. Click a card for its diagram.",
        "zh": "目录中的每个论断都在模拟器中运行并检查。点击卡片查看时序图。",
    },
    "show_all": {"en": "all", "zh": "全部"},
    "show_failing": {"en": "failing only", "zh": "仅未通过"},
    "back": {"en": "all scenarios", "zh": "全部场景"},
    "downloads": {"en": "Downloads", "zh": "下载"},
    "legend_flags": {
        "en": "flags: S=SYN A=ACK F=FIN R=RST P=PSH; seq/ack relative to each side's ISN",
        "zh": "标志: S=SYN A=ACK F=FIN R=RST P=PSH; seq/ack 相对于各自的初始序号 (ISN)",
    },
    "legend_flags_abs": {
        "en": "flags: S=SYN A=ACK F=FIN R=RST P=PSH; seq/ack absolute",
        "zh": "标志: S=SYN A=ACK F=FIN R=RST P=PSH; seq/ack 为绝对值",
    },
    "truncated": {"en": "more events not drawn", "zh": "个事件未绘出"},
    "gap": {"en": "later", "zh": "之后"},
    "no_events": {"en": "(no events recorded)", "zh": "(没有记录事件)"},
    "error": {"en": "error", "zh": "错误"},
    "max": {"en": "max", "zh": "最大"},
    "at": {"en": "at", "zh": "于"},
    "last": {"en": "last", "zh": "最终"},
    "scenario": {"en": "Scenario", "zh": "场景"},
}


def check_lang(lang: str) -> str:
    """Validate ``lang``; raises :class:`UsageError` naming the valid languages."""
    if lang not in LANGS:
        raise UsageError(f"unknown language {lang!r} (valid: {', '.join(LANGS)})")
    return lang


def label(key: str, lang: str = "en") -> str:
    """The UI label ``key`` in ``lang`` (English when a translation is missing)."""
    entry = _LABELS[key]
    return entry.get(lang) or entry["en"]


def check_claim(check: Any, lang: str) -> str:
    """A check's sentence in ``lang``; the English claim when the scenario gave no Chinese twin."""
    if lang == "zh" and getattr(check, "claim_zh", None):
        return str(check.claim_zh)
    return str(check.claim)


def narrative(summary: dict[str, Any], lang: str) -> str:
    """The run's narrative in ``lang`` (falls back to English, then to nothing)."""
    if lang == "zh" and summary.get("text_zh"):
        return str(summary["text_zh"])
    return str(summary.get("text") or "")


def num(x: float) -> str:
    """A number for people: integers without a decimal point, others with at most 3 significant decimals."""
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.3g}" if abs(x) < 1 else f"{x:.4g}"


# The call as the application wrote it (never translated).
_CALL: dict[AppCall, str] = {
    AppCall.LISTEN: "listen()",
    AppCall.CONNECT: "connect()",
    AppCall.CONNECTED: "connect() returns",
    AppCall.ACCEPT: "accept() returns",
    AppCall.SEND: "send()",
    AppCall.RECV: "recv()",
    AppCall.EOF: "recv() returns EOF",
    AppCall.SHUTDOWN: "shutdown(SHUT_WR)",
    AppCall.CLOSE: "close()",
    AppCall.ABORT: "close() with SO_LINGER {1, 0}",
    AppCall.ERROR: "error",
    AppCall.GIVE_UP: "give up",
    AppCall.CRASH: "crash",
    AppCall.REBOOT: "reboot",
}
_CALL_ZH: dict[AppCall, str] = {
    AppCall.CONNECTED: "connect() 返回",
    AppCall.ACCEPT: "accept() 返回",
    AppCall.EOF: "recv() 返回 EOF",
    AppCall.ERROR: "错误",
    AppCall.GIVE_UP: "放弃",
    AppCall.CRASH: "主机崩溃",
    AppCall.REBOOT: "主机重启",
}
# Why the application did it: {en, zh} with {v} for the event's value.
_WHY: dict[AppWhy, tuple[str, str]] = {
    AppWhy.IDLE_TIMEOUT: ("idle {v} s", "空闲 {v} 秒"),
    AppWhy.PER_IP_LIMIT: ("per-IP limit {v} exceeded", "超过每 IP 上限 {v}"),
    AppWhy.FD_LIMIT: ("fd limit {v} reached", "达到文件描述符上限 {v}"),
    AppWhy.CONNECT_TIMEOUT: ("connect timed out after {v} s", "连接 {v} 秒后超时"),
    AppWhy.READ_TIMEOUT: ("response timed out after {v} s", "响应 {v} 秒后超时"),
    AppWhy.SEND_TIMEOUT: ("send_timeout {v} s, data still queued", "发送超时 {v} 秒，数据仍在排队"),
    AppWhy.RESPONSE_DONE: ("response complete", "响应完整"),
    AppWhy.REQUEST: ("request", "请求"),
    AppWhy.HEARTBEAT: ("heartbeat", "心跳"),
    AppWhy.GREETING: ("greeting", "问候"),
    AppWhy.TWO_WAY: ("two-way: the SYN alone opened it", "两次握手：仅凭 SYN 就打开了连接"),
    AppWhy.POOL_NEW: ("pool: a new connection", "连接池：新建连接"),
    AppWhy.POOL_RETURN: ("connection back to the pool", "连接归还连接池"),
    AppWhy.POOL_PEER_CLOSED: ("pool: peer closed it, discard", "连接池：对端已关闭，丢弃"),
    AppWhy.POOL_MAX_IDLE: ("pool: idle >= max_idle {v} s", "连接池：空闲 >= max_idle {v} 秒"),
    AppWhy.RESUME_READING: ("application resumes reading", "应用恢复读取"),
    AppWhy.NOTHING_QUEUED: ("nothing queued", "队列为空"),
}
# Why the network lost a segment; diagrams print it after "lost".
_DROP: dict[DropReason, tuple[str, str]] = {
    DropReason.LOSS: ("random loss", "随机丢包"),
    DropReason.FAULT: ("fault", "故障规则"),
    DropReason.PARTITION: ("partition", "网络分区"),
    DropReason.NO_ROUTE: ("no route", "无路由"),
    DropReason.HOST_DOWN: ("host is down", "主机已宕机"),
    DropReason.FIREWALL: ("firewall forgot the flow", "防火墙已遗忘该连接"),
    DropReason.NAT: ("NAT: no translation", "NAT：无映射"),
    DropReason.NFTABLES: ("nftables rule at R", "R 处的 nftables 规则"),
    DropReason.HELD: ("held back by the delay box", "被延迟盒扣留"),
    DropReason.PAWS: ("rejected by PAWS", "被 PAWS 拒绝"),
}


def _app_text(ev: Event, lang: str) -> str:
    call = ev.call
    assert call is not None
    zh = lang == "zh"
    base = (_CALL_ZH.get(call) if zh else None) or _CALL[call]
    if call is AppCall.LISTEN:
        base = f"listen(port={ev.port}, backlog={ev.backlog})" if ev.backlog is not None else "listen()"
    elif call in (AppCall.SEND, AppCall.RECV) and ev.nbytes is not None and ev.errno is None:
        base = (
            f"send({ev.nbytes})"
            if call is AppCall.SEND
            else f"recv() {ev.nbytes} " + ("字节" if zh else "bytes")
        )
    if ev.errno is not None:
        fails = "失败" if zh else "fails"
        base = f"{ev.errno}" if call is AppCall.ERROR else f"{base} {fails}: {ev.errno}"
    if ev.why is not None:
        why_en, why_zh = _WHY[ev.why]
        why = (why_zh if zh else why_en).format(v=num(ev.value) if ev.value is not None else "")
        if call in (AppCall.SEND, AppCall.RECV) and ev.why in (
            AppWhy.REQUEST,
            AppWhy.HEARTBEAT,
            AppWhy.GREETING,
            AppWhy.RESPONSE_DONE,
        ):
            return f"{base} {why}" if call is AppCall.SEND else f"{base}: {why}"
        return f"{why}: {base}"
    if ev.text:
        return f"{base} ({ev.text_zh if zh and ev.text_zh else ev.text})"
    return base


def event_text(ev: Event, lang: str = "en") -> str:
    """The sentence an app, drop or note event stands for, in ``lang`` (timers and states render their names)."""
    kind = ev.kind
    if kind is EventKind.APP:
        return _app_text(ev, lang)
    if kind is EventKind.DROP:
        assert ev.reason is not None
        en, zh = _DROP[ev.reason]
        base = zh if lang == "zh" else en
        return f"{base}: {ev.text}" if ev.text else base
    if kind is EventKind.NOTE:
        return (ev.text_zh if lang == "zh" and ev.text_zh else ev.text) or ""
    if kind is EventKind.TIMER:
        return str(ev.timer)
    if kind is EventKind.STATE:
        return f"{ev.from_state} -> {ev.to_state}"
    return kind.value
