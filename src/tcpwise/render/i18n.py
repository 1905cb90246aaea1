"""UI labels of the renderers in English and Chinese.

Only the *frame* is translated here (headings, column names, "lost", "passed"). What a scenario says — check
claims, narratives — comes translated inside the :class:`tcpwise.events.Run` itself (``Check.claim_zh``,
``summary["text_zh"]``), because those sentences quote numbers measured in the run. State names and flag letters
are never translated: they are the RFC's and the kernel's vocabulary, and users grep for them.
"""

from __future__ import annotations

from typing import Any

from tcpwise.errors import UsageError

__all__ = ["LANGS", "label", "check_claim", "narrative", "check_lang"]

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
