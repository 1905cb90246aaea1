"""The message catalogue: every user-visible phrase tcpwise builds itself, in English and Chinese.

Four kinds of text live here, and nowhere else:

* the *frame* of the renderers and CLIs (:func:`label`: headings, column names, "lost", "passed") and the
  parameterised messages built around numbers (:func:`msg`: "37 data segments, 53.6 kB, 2 retransmissions");
* the sentence an event stands for (:func:`event_text`: ``connect() returns``, ``recv() 1000 bytes``, ``idle 10 s:
  close()``, a drop's reason), built from the event's typed fields so that checks never parse it back;
* the Chinese twin of the short English texts a run carries without one -- a check's measured evidence
  (``Check.detail``), a host's role, a drop rule's description -- through :func:`phrase`, a table of English
  templates with ``{placeholders}`` and their Chinese forms, read like a gettext catalogue (msgid -> msgstr);
* what a scenario says at length -- check claims, narratives, titles -- comes translated inside the
  :class:`tcpwise.events.Run` itself (``Check.claim_zh``, ``summary["text_zh"]``, ``summary["title_zh"]``),
  because those sentences quote numbers measured in the run.

State names, flag letters, call names (``connect()``), errno names, kernel counters and sysctls are never
translated: they are the RFC's, the kernel's and the C library's vocabulary, and users grep for them.
:func:`untranslated` finds any other English left in Chinese output; the tests of every command that takes
``--lang zh`` run their output through it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from tcpwise.errors import UsageError
from tcpwise.events import Event
from tcpwise.vocab import AppCall, AppWhy, DropReason, EventKind

__all__ = [
    "LANGS",
    "label",
    "msg",
    "check_claim",
    "check_detail",
    "narrative",
    "run_title",
    "role_text",
    "world_text",
    "conn_text",
    "series_name",
    "phrase",
    "check_lang",
    "event_text",
    "num",
    "untranslated",
]

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
    "app": {"en": "app", "zh": "应用"},
    "dup": {"en": "dup", "zh": "重复"},
    "unfold": {"en": "Show every segment", "zh": "显示全部报文段"},
    "listen_conn": {"en": "listen", "zh": "监听"},
    "id": {"en": "id", "zh": "编号"},
    "title": {"en": "title", "zh": "标题"},
    "lab_mark": {"en": "lab", "zh": "内核实验"},
    "all_hold": {"en": "all checks hold", "zh": "全部检查通过"},
    "written": {"en": "wrote", "zh": "已写入"},
    "open": {"en": "open", "zh": "打开"},
}

# Parameterised messages: {en, zh} templates formatted with str.format.
_MSG: dict[str, tuple[str, str]] = {
    "title_meta": ("world {world}, seed {seed}", "环境：{world}，种子 {seed}"),
    "title_meta_noseed": ("world {world}", "环境：{world}"),
    "timer_fired": ("timer {name} fired at t={t}", "定时器 {name} 于 t={t} 到期"),
    "state_at": ("{a} -> {b} at t={t}", "{a} -> {b}，t={t}"),
    "fold": (
        "{n} data segments {src} → {dst}, {size}{extra}",
        "{src} → {dst} 共 {n} 个数据段，{size}{extra}",
    ),
    "fold_acks": (", {n} ACKs", "，{n} 个 ACK"),
    "fold_retx": (", {n} retransmissions", "，{n} 次重传"),
    "fold_lost": (", {n} lost", "，丢失 {n} 个"),
    "fold_window": (", window {a} → {b}", "，窗口 {a} → {b}"),
    "fold_span": ("{t0}–{t1} s", "{t0}–{t1} 秒"),
    "unfold_count": ("Show every segment ({n} arrows)", "显示全部报文段（{n} 个箭头）"),
    "checks_failed": ("{n} check(s) FAILED", "{n} 项检查未通过"),
    "sim_wrote": ("{id}: wrote {path} ({status})", "{id}：已写入 {path}（{status}）"),
    "report_wrote": (
        "wrote {index} ({n} scenarios, {ok} passing)",
        "已写入 {index}（{n} 个场景，{ok} 个通过）",
    ),
    "report_failing": ("failing: {id}: {why}", "未通过：{id}：{why}"),
    "open_url": ("open {url}", "打开 {url}"),
    "demo_gallery": (
        "Report gallery of {n} scenarios ({ok} passing all checks):",
        "共 {n} 个场景的报告（{ok} 个全部检查通过）：",
    ),
    "lines_more": ("… {n} more lines", "… 另有 {n} 行"),
}

_WORLD: dict[str, tuple[str, str]] = {
    "sim": ("sim", "模拟器"),
    "lab": ("lab", "内核实验"),
    "trace": ("trace", "抓包"),
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


def msg(key: str, lang: str = "en", **fields: object) -> str:
    """The parameterised message ``key`` in ``lang``, formatted with ``fields``."""
    en, zh = _MSG[key]
    return (zh if lang == "zh" else en).format(**fields)


def world_text(world: str, lang: str = "en") -> str:
    """The name of a run's world (sim, lab, trace) for people."""
    en, zh = _WORLD.get(world, (world, world))
    return zh if lang == "zh" else en


def run_title(run: Any, lang: str = "en") -> str:
    """``id — title`` of a run in ``lang`` (the scenario's Chinese title travels in ``summary["title_zh"]``)."""
    title = str(getattr(run, "title", "") or "")
    if lang == "zh":
        title = str(run.summary.get("title_zh") or "") or phrase(title, lang)
    return f"{run.scenario} — {title}" if title else str(run.scenario)


def role_text(role: str, lang: str = "en") -> str:
    """A host's role ("server (per-IP limit 10)") in ``lang``."""
    return phrase(role, lang)


def conn_text(conn: str, lang: str = "en") -> str:
    """A connection label: ``B:80 (listen)`` names a listening socket; the rest are addresses and ports."""
    if lang == "zh" and conn.endswith(" (listen)"):
        return conn[: -len(" (listen)")] + f" ({label('listen_conn', lang)})"
    return conn


def check_detail(check: Any, lang: str) -> str:
    """A check's measured evidence in ``lang`` (``detail_zh`` when the check carries one, else the catalogue)."""
    detail = str(getattr(check, "detail", None) or "")
    if lang == "zh":
        own = getattr(check, "detail_zh", None)
        if own:
            return str(own)
        return phrase(detail, lang)
    return detail


def series_name(key: str, lang: str = "en") -> str:
    """A time series' name (``B.accept_queue``, ``connects``) in ``lang``: the host prefix and identifiers stay,
    the plain words of the last part are translated."""
    if lang != "zh":
        return key
    head, dot, last = key.rpartition(".")
    zh = _SERIES_WORDS.get(last)
    return f"{head}{dot}{zh}" if zh else key


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
    AppCall.ABORT: "close()（SO_LINGER {1, 0}）",
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
    DropReason.PROBE: ("by the probe, on purpose", "探测器故意丢弃"),
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
        return f"{base} ({(ev.text_zh or phrase(ev.text, lang)) if zh else ev.text})"
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
        if not ev.text:
            return base
        detail = (ev.text_zh or phrase(ev.text, lang)) if lang == "zh" else ev.text
        return f"{base}: {detail}"
    if kind is EventKind.NOTE:
        if lang == "zh":
            return ev.text_zh or phrase(ev.text or "", lang)
        return ev.text or ""
    if kind is EventKind.TIMER:
        return str(ev.timer)
    if kind is EventKind.STATE:
        return f"{ev.from_state} -> {ev.to_state}"
    return kind.value


# -- the phrase catalogue: short English texts a run carries without a Chinese twin ---------------------------------
# Each entry is an English template and its Chinese form. A placeholder {a}...{f} matches any text (as little as
# possible) and is itself translated when it holds English words; the whole text must match. A text no template
# matches is tried again piece by piece, split at "; ". Add the template here when the zh test names a new text.
_SERIES_WORDS: dict[str, str] = {
    "completed": "完成数",
    "accepted": "已接受",
    "connects": "连接次数",
    "fds": "fd 数",
    "timeouts": "超时数",
    "errors": "错误数",
    "opened": "新建数",
    "from_A": "来自 A",
}

_PHRASES: tuple[tuple[str, str], ...] = (
    # values
    # roles
    ("client", "客户端"),
    ("clients", "客户端们"),
    ("server", "服务端"),
    ("attacker", "攻击者"),
    ("legit client", "正常客户端"),
    ("another client", "另一个客户端"),
    ("client that never closes", "从不关闭连接的客户端"),
    ("client with a naive pool", "使用朴素连接池的客户端"),
    ("client behind NAT", "NAT 之后的客户端"),
    ("NAT (public address)", "NAT（公网地址）"),
    ("router", "路由器"),
    ("server ({a})", "服务端，{a}"),
    ("idle timeout {a}", "空闲超时 {a}"),
    ("legacy tw_recycle", "旧的 tw_recycle"),
    ("never close()s", "从不 close()"),
    ("per-IP limit {a}", "每 IP 上限 {a}"),
    ("slow accept()", "accept() 很慢"),
    # drop rules and notes the simulator and the lab write
    ("next {a} {b} {c}->{d}", "{c}->{d} 方向接下来 {a} 个 {b} 报文"),
    (
        "stateful firewall: no state, forgotten after {a} idle",
        "有状态防火墙：没有该连接的状态，空闲 {a} 后已遗忘",
    ),
    ("delivered at t={a}", "于 t={a} 送达"),
    (
        "legacy tw_recycle: SYN TSval {a} older than {b} last seen from {c} {d} ago ({e})",
        "旧的 tw_recycle：SYN 的 TSval {a} 早于 {d} 前从 {c} 见到的 {b}（{e}）",
    ),
    ("all TCP state lost, nothing sent", "TCP 状态全部丢失，什么也没发送"),
    ("an empty TCP stack", "一个空的 TCP 协议栈"),
    (
        "lab run stopped at {a} of the script's {b} (--full runs it all)",
        "内核实验在脚本 {b} 中的 {a} 处停止（--full 可运行全程）",
    ),
    # check evidence (Check.detail)
    ("measured {a}", "测量值 {a}"),
    ("measured on the packet model: {a}", "在报文模型上测得：{a}"),
    ("measured in a second run: {a}", "第二次运行测得：{a}"),
    ("RST sent: {a}", "发出 RST：{a}"),
    ("{a} segments", "{a} 个报文段"),
    ("first segment from {a}: {b}", "{a} 发出的第一个报文段：{b}"),
    ("{a} ACK(s) from {b} after the second FIN", "第二个 FIN 之后 {b} 发出 {a} 个 ACK"),
    ("{a} dropped pure ACK(s) from {b}", "{b} 的纯 ACK 被丢弃 {a} 个"),
    ("{a} RST(s) reached {b}", "{a} 个 RST 到达 {b}"),
    ("FINs from {a}: {b}, interval {c}", "{a} 发出的 FIN：{b} 个，间隔 {c}"),
    ("TIME_WAIT from {a} for {b}", "TIME_WAIT 从 {a} 开始，持续 {b}"),
    ("second FIN arrived at {a}", "第二个 FIN 于 {a} 到达"),
    ("{a} sent {b} bytes in CLOSE_WAIT", "{a} 在 CLOSE_WAIT 中发送了 {b} 字节"),
    ("{a} received {b} bytes in FIN_WAIT_2, read {c}", "{a} 在 FIN_WAIT_2 中收到 {b} 字节，读取 {c}"),
    ("{a} in TIME_WAIT for {b}", "{a} 处于 TIME_WAIT {b}"),
    ("{a} in CLOSE_WAIT from {b}", "{a} 从 {b} 起处于 CLOSE_WAIT"),
    (
        "{a} LAST_ACK at {b}, {c}'s FIN reaches {d} at {e}, {f} TIME_WAIT at {g}",
        "{a} 于 {b} 进入 LAST_ACK，{c} 的 FIN 于 {e} 到达 {d}，{f} 于 {g} 进入 TIME_WAIT",
    ),
    ("{a}=1 (relative), ack={b} sent by {c}: {d}", "{a}=1（相对值），{c} 发出 ack={b}：{d}"),
    ("{a}'s FIN: FA ack={b}: {c}", "{a} 的 FIN：FA ack={b}：{c}"),
    ("CLOSE_WAIT {a}, LAST_ACK {b}", "CLOSE_WAIT {a}，LAST_ACK {b}"),
    ("FIN_WAIT_2 orphan lasted {a}", "孤儿 FIN_WAIT_2 持续 {a}"),
    ("TIME_WAIT lasted {a}", "TIME_WAIT 持续 {a}"),
    ("{a} held at {b}, delivered at {c}", "{a} 在 {b} 被扣留，于 {c} 送达"),
    ("{a}'s ISN J_new={b}", "{a} 的 ISN J_new={b}"),
    ("J_new={a}, {b} ESTABLISHED at {c}", "J_new={a}，{b} 于 {c} 进入 ESTABLISHED"),
    ("accept() calls for the ghost: {a} expected", "幽灵连接的 accept() 调用：预期 {a} 次"),
    ("SYN queue at end: {a}", "结束时 SYN 队列：{a}"),
    (
        "ghost connections accepted: {a}, bytes sent to it: {b}, lived {c} until {d}'s RST happened to kill it",
        "被 accept 的幽灵连接：{a} 个，向它发送 {b} 字节，存活 {c}，直到 {d} 的 RST 碰巧杀死它",
    ),
    ("segments from {a} with ack={b}: {c}", "{a} 发出的 ack={b} 的报文段：{c}"),
    ("ISN J_old={a}, J_new={b} (distance {c})", "ISN J_old={a}，J_new={b}（相距 {c}）"),
    ("the old segment lands {a} bytes into the new stream", "旧报文段落在新字节流的第 {a} 字节处"),
    (
        "held seq={a} ({b} bytes at old offset {c}), delivered at {d}, reconnect at {e}",
        "被扣留的 seq={a}（旧偏移 {c} 处的 {b} 字节）于 {d} 送达，{e} 时重连",
    ),
    ("{a} of {b} bytes, intact", "{b} 字节中 {a} 字节完好"),
    (
        "{a} of {b} bytes differ, offsets {c}: got {d}, sent {e}",
        "{b} 字节中 {a} 字节不同，偏移 {c}：收到 {d}，发送的是 {e}",
    ),
    ("connect() at {a}: {b}", "{a} 时 connect()：{b}"),
    ("{a} in TIME_WAIT since {b} for {c}", "{a} 自 {b} 起处于 TIME_WAIT，时长 {c}"),
    ("bytes read by a new connection: {a}", "新连接读到的字节：{a}"),
    (
        "peak ports in use {a}, peak TIME_WAIT {b} of {c} ports (up to {d} may be held by connections not yet closed)",
        "占用端口峰值 {a}，TIME_WAIT 峰值 {b}（共 {c} 个端口；最多 {d} 个可能被尚未关闭的连接占用）",
    ),
    ("{a} conn/s: {b} failed", "每秒 {a} 个连接：{b} 个失败"),
    ("{a} conn/s: {b} failed (flow model)", "每秒 {a} 个连接：{b} 个失败（流模型）"),
    ("{a} of {b} connects failed", "{b} 次连接中 {a} 次失败"),
    ("first failure at t={a} (ports/rate = {b})", "首次失败于 t={a}（端口数/速率 = {b}）"),
    ("reuse allowed {a} into TIME_WAIT (packet model)", "进入 TIME_WAIT {a} 后即允许复用（报文模型）"),
    ("reuse never allowed before TIME_WAIT ended (packet model)", "TIME_WAIT 结束前从不允许复用（报文模型）"),
    ("failed connects: {a} vs {b} without it", "失败的连接：{a}，不启用时为 {b}"),
    ("failed connects: {a}", "失败的连接：{a}"),
    (
        "{a} connections for {b} requests/s (request time {c}), TIME_WAIT peak {d}",
        "每秒 {b} 个请求用 {a} 个连接（请求耗时 {c}），TIME_WAIT 峰值 {d}",
    ),
    (
        "{a} RST per lifecycle, server saw {b}, TIME_WAIT peak {c}, failed {d}",
        "每个生命周期 {a} 个 RST，服务端看到 {b}，TIME_WAIT 峰值 {c}，失败 {d}",
    ),
    ("sources seen at {a}: {b}, NAT translations {c}", "{a} 看到的源地址：{b}，NAT 转换 {c} 次"),
    ("SYNs rejected: {a}", "被拒绝的 SYN：{a}"),
    ("completed: {a}", "完成：{a}"),
    ("{a} (clock {b})", "{a}（时钟 {b}）"),
    (
        "segments from {a} between the crash ({b}) and {c}'s next segment after the reboot ({d}): {e}",
        "从崩溃（{b}）到重启后 {c} 的下一个报文段（{d}）之间 {a} 发出的报文段：{e}",
    ),
    ("{a}'s state changes between crash and send: {b}", "{a} 在崩溃到发送之间的状态变化：{b}"),
    ("{a}'s states during the run: {b}", "{a} 在运行中的状态：{b}"),
    (
        "data segments reaching {a}: {b}, {c}'s segments lost: {d}",
        "到达 {a} 的数据段：{b}，{c} 丢失的报文段：{d}",
    ),
    ("intervals {a}", "间隔 {a}"),
    ("gave up after {a}, {b} retransmissions", "{a} 后放弃，重传 {b} 次"),
    ("heartbeat sent at {a}, server close() at {b}", "心跳于 {a} 发出，服务端于 {b} close()"),
    ("write at {a} returned {b}", "{a} 的写入返回 {b}"),
    ("RST from {a} at {b}", "{a} 于 {b} 发来 RST"),
    ("failed write at {a}: {b}", "{a} 的写入失败：{b}"),
    (
        "first probe at {a} seq={b}, {c} after the last segment",
        "第一个探测于 {a}，seq={b}，距最后一个报文段 {c}",
    ),
    ("{a} probes answered", "{a} 个探测得到应答"),
    ("gaps after each answer: {a}", "每次应答后的间隔：{a}"),
    ("{a} unanswered probes, gaps {b}", "{a} 个探测无应答，间隔 {b}"),
    ("flow forgotten at {a}", "连接状态于 {a} 被遗忘"),
    ("segments delivered meanwhile: {a}", "期间送达的报文段：{a}"),
    ("state changes before {a} other than the handshake: {b}", "{a} 之前除握手外的状态变化：{b}"),
    ("{a} of {b}'s segments dropped by the firewall", "{b} 的报文段被防火墙丢弃 {a} 个"),
    ("{a} of {b}'s segments dropped", "{b} 的报文段被丢弃 {a} 个"),
    ("{a} at {b}", "{b} 时 {a}"),
    ("RSTs sent by anyone: {a}", "任何一方发出的 RST：{a}"),
    (
        "data reaching {a} after {b}: {c}, reaching {d}: {e}, errors: {f}",
        "{b} 之后到达 {a} 的数据：{c}，到达 {d}：{e}，错误：{f}",
    ),
    ("probes before {a}: {b}, flows expired: {c}", "{a} 之前的探测：{b}，过期的连接：{c}"),
    (
        "{a} responses, CLOSE_WAIT peak {b}, never decreasing: {c}",
        "{a} 个响应，CLOSE_WAIT 峰值 {b}，从不下降：{c}",
    ),
    (
        "open fds peaked at {a} ({b} + {c} accepted sockets)",
        "打开的 fd 峰值 {a}（{b} + {c} 个已 accept 的套接字）",
    ),
    ("{a} accept() calls failed with {b}, first at t={c}", "{a} 次 accept() 调用以 {b} 失败，第一次在 t={c}"),
    ("accept queue peaked at {a} of {b}", "全连接队列峰值 {a}（上限 {b}）"),
    ("ListenOverflows {a}", "ListenOverflows {a}"),
    ("{a} connects timed out after {b}", "{a} 次连接在 {b} 后超时"),
    ("{a} requests timed out in all", "共 {a} 个请求超时"),
    (
        "server holds {a} ESTABLISHED connections from {b} (capacity {c})",
        "服务端持有来自 {b} 的 {a} 个 ESTABLISHED 连接（容量 {c}）",
    ),
    ("{a} accept() EMFILE", "{a} 次 accept() EMFILE"),
    ("{a}: {b}/{c} requests completed, {d} timed out", "{a}：完成 {b}/{c} 个请求，{d} 个超时"),
    ("{a}: {b}/{c} requests completed", "{a}：完成 {b}/{c} 个请求"),
    ("server holds {a} from {b}", "服务端持有来自 {b} 的 {a} 个连接"),
    ("refused {a}", "拒绝 {a} 个"),
    ("{a} saw {b}", "{a} 看到 {b}"),
    (
        "syncookies={a}: SYN queue peaked at {b} of {c} (backlog + 1 = {d})",
        "syncookies={a}：SYN 队列峰值 {b}（上限 {c}，backlog + 1 = {d}）",
    ),
    ("{a} flood SYNs", "{a} 个洪水 SYN"),
    ("{a} SYN-ACKs (with retransmissions) went nowhere", "{a} 个 SYN-ACK（含重传）无处可达"),
    ("{a} sent {b} SYNs, gave up after {c}", "{a} 发出 {b} 个 SYN，{c} 后放弃"),
    ("ListenDrops {a} (TCPReqQFullDrop {b})", "ListenDrops {a}（TCPReqQFullDrop {b}）"),
    ("{a} ESTABLISHED at t={b}", "{a} 于 t={b} 进入 ESTABLISHED"),
    ("SyncookiesSent {a}, SyncookiesRecv {b}", "SyncookiesSent {a}，SyncookiesRecv {b}"),
    (
        "listen(backlog={a}) with somaxconn={b} -> effective backlog {c}",
        "listen(backlog={a})，somaxconn={b} -> 实际 backlog {c}",
    ),
    ("peak {a}", "峰值 {a}"),
    (
        "ListenOverflows {a}; the late client sent {b} SYNs",
        "ListenOverflows {a}；晚到的客户端发出 {b} 个 SYN",
    ),
    ("the late client sent {a} SYNs", "晚到的客户端发出 {a} 个 SYN"),
    (
        "client port {a}: ESTABLISHED at {b} t={c}, at {d} t={e}",
        "客户端端口 {a}：{b} 在 t={c} 进入 ESTABLISHED，{d} 在 t={e}",
    ),
    ("{a} SYN-ACKs", "{a} 个 SYN-ACK"),
    ("first accept() at t={a}", "第一次 accept() 在 t={a}"),
    ("{a} of {b} connections accepted by the end", "结束时 {b} 个连接中 {a} 个已被 accept"),
    ("{a} ECONNRESET at the client", "客户端 {a} 次 ECONNRESET"),
    ("first affected client port {a}", "第一个受影响的客户端端口 {a}"),
    ("first zero window at {a}", "第一次零窗口在 {a}"),
    ("{a} of {b} bytes still queued at the server's timeout", "服务端超时时 {b} 字节中仍有 {a} 字节在排队"),
    ("written {a}, client got {b}, discarded {c}", "写入 {a}，客户端收到 {b}，丢弃 {c}"),
    ("read {a} of {b}", "读取 {b} 字节中的 {a} 字节"),
    ("no error", "没有错误"),
    ("server closed {a} idle connections", "服务端关闭了 {a} 个空闲连接"),
    ("client CLOSE_WAIT peaked at {a}", "客户端 CLOSE_WAIT 峰值 {a}"),
    ("{a} of {b} requests failed {c}", "{b} 个请求中 {a} 个失败 {c}"),
    ("{a} RSTs from the server", "服务端发来 {a} 个 RST"),
    (
        "naive: opened {a}, holds {b} sockets ({c} in CLOSE_WAIT) at the end",
        "朴素连接池：新建 {a} 个，结束时持有 {b} 个套接字（{c} 个处于 CLOSE_WAIT）",
    ),
    (
        "validating: {a} errors, {b} completed, opened {c}, evicted {d} idle, discarded {e} dead, holds {f}",
        "校验连接池：错误 {a} 个，完成 {b}，新建 {c} 个，淘汰空闲 {d} 个，丢弃失效 {e} 个，持有 {f}",
    ),
    ("{a} sockets ({b} CLOSE_WAIT)", "{a} 个套接字（{b} 个 CLOSE_WAIT）"),
    ("pool ({a})", "连接池（{a}）"),
    ("proxy upstream keep-alive", "代理到上游的 keep-alive"),
    (
        "configured: {a} failed ({b}), {c} retried, of {d}",
        "按原配置：{d} 个请求中 {a} 个失败（{b}），重试 {c} 个",
    ),
    (
        "fixed: {a} failed, {b} retried, {c} completed, {d} connections opened, {e} closed idle by the pool",
        "修正后：失败 {a} 个，重试 {b} 个，完成 {c}，新建连接 {d} 个，连接池因空闲关闭 {e} 个",
    ),
    ("failed connections had been idle {a}", "失败的连接此前已空闲 {a}"),
    ("request sent at {a}, reaches the server at {b}", "请求于 {a} 发出，{b} 到达服务端"),
    ("the server's FIN left at {a}, reaches the pool at {b}", "服务端的 FIN 于 {a} 发出，{b} 到达连接池"),
    ("RST at {a}", "{a} 时 RST"),
    # segment-level stories (window-scaling, read-window-update, ack-unsent-data, lost-fin)
    ("{a} offers ws={b}", "{a} 提供 ws={b}"),
    ("window fields {a} -> {b} bytes and up", "窗口字段 {a} -> {b} 字节及以上"),
    ("{a} segments in the first flight, {b} in all", "首轮发送 {a} 个报文段，共 {b} 个"),
    ("segments from {a} within {b} of the read at {c}: {d}", "{c} 读取后 {b} 内 {a} 发出的报文段：{d}"),
    ("stray segment at {a}", "异常报文段于 {a} 到达"),
    ("segments from {a} in the {b} after it: {c}", "其后 {b} 内 {a} 发出的报文段：{c}"),
    ("FINs sent at {a}; first gap {b}, expected {c}", "FIN 发送于 {a}；第一个间隔 {b}，预期 {c}"),
    ("gaps after the probe: {a} (RTO {b})", "探测之后的间隔：{a}（RTO {b}）"),
    (
        "gave up {a} after the first RTO retransmission ({b} after the data), {c} retransmissions",
        "首次 RTO 重传后 {a} 放弃（数据发出后 {b}），重传 {c} 次",
    ),
    # run titles of worlds that carry no Chinese title (lab runs copy the catalogue's; trace names a file)
    ("lab run {a}", "内核实验运行 {a}"),
)
_PH = re.compile(r"\{([a-g])\}")


_VALUE_WORDS = {"True": "是", "False": "否", "None": "无"}


@lru_cache(maxsize=1)
def _compiled() -> tuple[tuple[re.Pattern[str], str], ...]:
    """The templates as regular expressions, most specific (most literal text) first."""
    out = []
    for en, zh in sorted(_PHRASES, key=lambda p: -len(_PH.sub("", p[0]))):
        pattern = "".join(
            f"(?P<{part}>[^;]+?)" if i % 2 else re.escape(part) for i, part in enumerate(_PH.split(en))
        )
        out.append((re.compile(pattern, re.DOTALL), zh))
    return tuple(out)


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += ch in "([{（"
        depth -= ch in ")]}）"
        if depth < 0:
            return False
    return depth == 0


def phrase(text: str, lang: str = "en", _depth: int = 0) -> str:
    """The Chinese form of a short English ``text`` from the catalogue (``text`` itself in English, or when the
    catalogue has no template for it -- the zh tests then name it)."""
    if lang != "zh" or not text or _depth > 5 or not untranslated(text):
        return text
    best = text
    for rx, zh in _compiled():
        m = rx.fullmatch(text)
        if m is None or not all(_balanced(v) for v in m.groupdict().values()):
            continue
        out = zh.format(**{k: phrase(v, lang, _depth + 1) for k, v in m.groupdict().items()})
        if not untranslated(out):
            return out
        if best is text:
            best = out
    for sep, zsep in (("; ", "；"), (", ", "，")):
        parts = text.split(sep)
        if len(parts) > 1 and all(_balanced(p) for p in parts):
            out = zsep.join(phrase(p, lang, _depth + 1) for p in parts)
            if not untranslated(out):
                return out
    return re.sub(r"\b(True|False|None)\b", lambda m: _VALUE_WORDS[m.group(1)], best)


# -- finding English left in Chinese output ---------------------------------------------------------------------
# What may stay in Latin letters inside Chinese text: the vocabulary users grep for (state names, flags, errno,
# calls, kernel counters, sysctls, parameters and their values), units, host names, proper names and the few
# terms Chinese engineers write in English (backlog, accept, cookie, fd). Everything else made of two or more
# Latin letters is an untranslated word.
_KEEP_WORDS = frozenset(
    "tcpwise Linux nginx nftables syncookies Wireshark tshark tcpdump Zeek Mermaid JSON SVG HTML PNG pcap "
    "seq ack len win mss ws ts sackok sack rto persist keepalive ms µs kB MB GB min "
    "backlog accept cookie cookies fd fds lab sim trace crash ss conntrack somaxconn ping "
    "Broken pipe Connection reset by peer".split()
)
_KEEP_PATTERNS = re.compile(
    r"[A-Za-z_][\w.]*\("  # a call: connect(, listen(
    r"|\b\w+=\S*"  # a parameter or field and its value: seq=1, backlog=128, keepalive=False
    r"|\b[A-Za-z0-9]*_[\w.]*"  # an identifier with an underscore: time_wait, tcp_fin_timeout
    r"|\b\w+(?:\.\w+)+"  # a dotted name: net.core.somaxconn, naive.A.errors, B.SYN_RCVD
    r"|\b\d*[A-Z][A-Z0-9]*(?:[-+/][A-Z0-9]+)*(?:\(s\)|s)?\b"  # acronyms: SYN, ECONNRESET, SYN-ACK, RSTs, 2MSL
    r"|\b(?=\w*[A-Z]\w*[A-Z])(?=\w*[a-z])[A-Za-z0-9]+\b"  # a CamelCase counter: ListenOverflows, TCPReqQFullDrop
    r"|'[^']*'"  # quoted data: payload bytes
    r"|\b[a-z0-9]+(?:-[a-z0-9]+)+\b"  # a kebab-case id: lost-last-ack
    r"|\b0x[0-9a-fA-F]+\b"
    r"|--[a-z][\w-]*"  # a command-line option: --full
    r"|\b\w+\*\w+\b"  # a formula of parameters: intvl*probes
    r"|\b[Kk]eep-alive\b"  # HTTP's keep-alive, written so in Chinese too
    r"|\b[1-5]\d\d(?: [A-Z][a-z]+)+"  # an HTTP status line: 502 Bad Gateway
    r"|\b[A-Za-z]\b"  # a host name or unit: A, B, s
)
_WORD = re.compile(r"[A-Za-z]{2,}")


def untranslated(text: str, keep: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The lines of ``text`` (Chinese output) that still contain an English word, each followed by the words
    found, e.g. ``measured 60.0  «measured»``. ``keep`` adds identifiers of the caller's world (scenario ids,
    process names) that stay as they are. Empty when the text is fully translated."""
    bad: list[str] = []
    for line in text.splitlines():
        rest = _KEEP_PATTERNS.sub(" ", line)
        words = [w for w in _WORD.findall(rest) if w not in _KEEP_WORDS and w not in keep]
        if words:
            bad.append(f"{line.strip()}  «{' '.join(words)}»")
    return bad
