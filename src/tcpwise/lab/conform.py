"""Conformance: does the model tell the same story as the kernel, segment by segment?

Theory of operation
-------------------
For each catalogue scenario the lab can play (:mod:`tcpwise.lab.playbook` says how, or why not), the same script
with the same parameters — scaled down where the catalogue's defaults would take minutes — runs in both worlds:
the model through the simulator (:func:`tcpwise.sim.runner.run_script`, Linux profile, with the components the
scenario needs, e.g. a stateful firewall) and the kernel through :mod:`tcpwise.lab.executor`. Both runs are cut
at the same horizon and compared at three levels:

1. **states** — per host, the ``to`` state of every state change in time order, consecutive repeats folded and
   transient states (held less than :data:`MIN_STATE`) left out in both worlds (:func:`sequences`);
2. **segments** — every segment each host sent, normalised (relative seq/ack, scaled window, options, TSecr echo
   pattern) and compared position by position per connection (:mod:`tcpwise.lab.segdiff`); the first difference
   is the scenario's drill-down;
3. **timing** — timer-driven events (retransmissions, probes, TIME_WAIT and FIN_WAIT_2 expiry, giving up) within
   the stated tolerance (:func:`tcpwise.lab.segdiff.timing_tolerance`).

A scenario matches at level ``segment`` when all three agree; a scenario whose plan only compares states (the
segments depend on something neither world controls, e.g. the kernel's delayed-ACK heuristics in a bulk
transfer) is level ``state``; one the kernel cannot play is level ``none`` with the reason. Differences are
classified in the table: a documented Linux deviation the model does not reproduce (the plan names it, with
docs/deviations.md's evidence), otherwise a difference to fix — in the model, or in the lab.

Scenarios run in parallel worker processes (each in its own namespaces), ``jobs`` at a time.
"""

from __future__ import annotations

import contextlib
import difflib
import sys
from dataclasses import dataclass, field
from typing import IO, Any

from tcpwise.events import Check, Event, Run
from tcpwise.vocab import EventKind

__all__ = [
    "sequences",
    "compare",
    "HostDiff",
    "ConformResult",
    "lab_scenario_run",
    "conform_scenario",
    "conform_all",
    "format_table",
    "format_drilldown",
    "horizon_of",
    "MIN_STATE",
    "SETTLE",
    "FULL_GRACE",
]

FULL_GRACE = 5.0  # seconds a --full lab run goes past the script's end (kernel timer slack)
SETTLE = (
    2.5  # seconds after the last step that both runs are compared over (retransmissions, TIME_WAIT entry)
)

# A state held for less than this is "transient": the kernel passes through it inside one segment's processing
# (FIN_WAIT_1 -> FIN_WAIT_2 -> TIME_WAIT on a FIN+ACK) or one application step (CLOSE_WAIT -> LAST_ACK when the
# application closes on EOF). sock_diag polling cannot see such states, so both worlds drop them alike. Every
# other state lasts at least one link delay (50 ms).
MIN_STATE = 0.010
# A CLOSED between two incarnations of one 4-tuple (a SYN queue entry reset, then a new SYN at once) lasts as long
# as the peer takes to send again: 8-16 ms on the kernel, timer-wheel noise around MIN_STATE. Such a gap is folded
# in both worlds when it is shorter than this.
MIN_CLOSED_GAP = 0.05


def sequences(
    run: Run, host: str, horizon: float | None = None, min_state: float = MIN_STATE
) -> tuple[list[str], list[str]]:
    """(state sequence, sent-flags sequence) of ``host`` in ``run``, up to ``horizon`` seconds.

    States held for less than ``min_state`` seconds on their connection are left out (see MIN_STATE)."""
    evs = [e for e in run.events if e.host == host and (horizon is None or e.t <= horizon)]
    state_evs = [e for e in evs if e.kind == "state" and e.to_state]
    next_t: dict[int, float] = {}
    last_by_conn: dict[str | None, int] = {}
    for i, e in enumerate(state_evs):
        j = last_by_conn.get(e.conn)
        if j is not None:
            next_t[j] = e.t
        last_by_conn[e.conn] = i
    states: list[str] = []
    for i, e in enumerate(state_evs):
        held = next_t[i] - e.t if i in next_t else None
        if held is not None and (held < min_state or (e.to_state == "CLOSED" and held < MIN_CLOSED_GAP)):
            continue
        if not states or states[-1] != e.to_state:
            states.append(str(e.to_state))
    flags = [e.segment.flags for e in evs if e.kind == "send" and e.segment is not None]
    return states, flags


@dataclass
class HostDiff:
    host: str
    what: str  # "states" | "flags"
    sim: list[str]
    lab: list[str]
    ops: list[str] = field(default_factory=list)  # human-readable edit script, e.g. "lab adds FA at 3"

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "what": self.what, "sim": self.sim, "lab": self.lab, "ops": self.ops}


def _ops(a: list[str], b: list[str]) -> list[str]:
    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace":
            out.append(f"at {i1}: model {' '.join(a[i1:i2])} / kernel {' '.join(b[j1:j2])}")
        elif tag == "delete":
            out.append(f"at {i1}: only the model has {' '.join(a[i1:i2])}")
        else:
            out.append(f"at {i1}: only the kernel has {' '.join(b[j1:j2])}")
    return out


def conn_sequences(run: Run, host: str, horizon: float | None = None) -> list[list[str]]:
    """``host``'s state sequence per connection (listeners and connections, in the order they first appear),
    with transient states folded like :func:`sequences`: connections of one host may interleave differently in
    the two worlds (a delayed ACK moves one by 40 ms) without either being wrong."""
    by_conn: dict[str | None, list[Event]] = {}
    for e in run.events:
        if e.host == host and e.kind == "state" and e.to_state and (horizon is None or e.t <= horizon):
            by_conn.setdefault(e.conn, []).append(e)
    out = []
    for evs in by_conn.values():
        one = Run(scenario="", hosts=run.hosts, events=evs)
        seq = sequences(one, host)[0]
        if seq == ["CLOSED"]:
            # A connect() that failed before any segment (EADDRNOTAVAIL): Linux's tcp_v4_connect sets SYN_SENT
            # before inet_hash_connect looks for a port and sets CLOSE when none is free (the tracepoint sees
            # both, 7 us apart); the model never leaves CLOSED. Neither world had a connection.
            continue
        out.append(seq)
    return out


def compare(sim: Run, lab: Run, horizon: float | None = None) -> list[HostDiff]:
    """Per-host state and flag differences between a model run and a lab run (empty list = they conform at the
    state level). Hosts are matched by name; states are compared connection by connection
    (:func:`conn_sequences`); ``horizon`` cuts both runs at the same time."""
    diffs: list[HostDiff] = []
    names = [h.name for h in sim.hosts] or sorted({e.host for e in sim.events})
    for host in names:
        s_states, s_flags = sequences(sim, host, horizon)
        l_states, l_flags = sequences(lab, host, horizon)
        s_conns, l_conns = conn_sequences(sim, host, horizon), conn_sequences(lab, host, horizon)
        if s_conns != l_conns:
            s_flat = [" ".join(c) for c in s_conns]
            l_flat = [" ".join(c) for c in l_conns]
            ops = _ops(s_flat, l_flat) if s_states == l_states else _ops(s_states, l_states)
            diffs.append(HostDiff(host, "states", s_states, l_states, ops))
        if s_flags != l_flags:
            diffs.append(HostDiff(host, "flags", s_flags, l_flags, _ops(s_flags, l_flags)))
    return diffs


@dataclass
class ConformResult:
    scenario: str
    match: bool
    diffs: list[HostDiff]
    horizon: float
    level: str = "segment"  # "segment" | "state" | "none"
    reason: str | None = None  # why it does not match, or why it is not (fully) playable
    segment: dict[str, Any] | None = None  # the first differing segment (SegmentDiff.to_dict)
    drilldown: list[str] = field(default_factory=list)  # that difference, as text
    timing: list[dict[str, Any]] = field(default_factory=list)
    deviation: str | None = None
    error: str | None = None
    sequences: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    attempts: int = 1
    overrides: dict[str, str] = field(default_factory=dict)
    segments_compared: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The `lab conform --json` contract: id, match, level, reason, diff (the first differing segment or null),
        plus details scripts may ignore."""
        diff: dict[str, Any] | None = self.segment
        if diff is None and self.diffs:
            d = self.diffs[0]
            diff = {"host": d.host, "fields": [d.what], "ops": d.ops}
        if diff is None and self.timing:
            diff = {"timing": self.timing[0]}
        d2: dict[str, Any] = {
            "id": self.scenario,
            "match": self.match,
            "level": self.level,
            "reason": self.reason,
            "diff": diff if not self.match else None,
            "horizon": self.horizon,
            "attempts": self.attempts,
            "segments_compared": self.segments_compared,
            "overrides": self.overrides,
            "states": [x.to_dict() for x in self.diffs],
            "timing": self.timing,
            "sequences": self.sequences,
        }
        if self.deviation:
            d2["deviation"] = self.deviation
        if self.error:
            d2["error"] = self.error
        return d2


# --- the scenario API glue -------------------------------------------------------------------------------------
def _scenario(scenario_id: str) -> Any:
    from tcpwise.scenarios import get_scenario

    return get_scenario(scenario_id)


def _lab_scenario(scenario_id: str) -> Any:
    from tcpwise.errors import UsageError
    from tcpwise.lab.playbook import plan_for

    sc = _scenario(scenario_id)
    plan = plan_for(scenario_id)
    if sc.build is None or plan.level == "none":
        from tcpwise.lab.playbook import playable

        why = plan.reason or "it needs simulator components the lab does not have"
        raise UsageError(
            f"scenario {scenario_id!r} cannot run in the lab: {why} (lab-capable: {', '.join(playable())})"
        )
    return sc


def _params(sc: Any, overrides: dict[str, str]) -> dict[str, Any]:
    """Scenario parameters with ``--set`` overrides, typed and checked by the scenario API, then refused if a
    value cannot be run (non-finite, negative): before anything is built."""
    from tcpwise.errors import UsageError
    from tcpwise.scenarios import parse_overrides

    typed = parse_overrides(sc, overrides)
    for k, v in typed.items():
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            raise UsageError(f"--set {k}={overrides.get(k, v)}: must be a finite number")
        if isinstance(v, int | float) and not isinstance(v, bool) and v < 0:
            raise UsageError(f"--set {k}={overrides.get(k, v)}: must not be negative")
    return dict(sc.resolve(typed))


def lab_scenario_run(
    scenario_id: str,
    *,
    seed: int = 1,
    overrides: dict[str, str] | None = None,
    ipv6: bool = False,
    max_duration: float | None = None,
    pcap: IO[bytes] | None = None,
    full: bool = False,
    progress: Any = None,
) -> Run:
    """Run a catalogue scenario in the lab and fill in its checks.

    Wall-clock bound: unless ``full``, the run stops ``SETTLE`` s after the last step (or at ``max_duration``,
    or where the scenario's lab plan says); a note in the run says where it was cut. A check the cut run cannot
    observe — the model, cut at the same time, fails it too — is reported as not observed (``--full`` observes
    it) and does not fail the run."""
    from tcpwise.lab.executor import run_script, validate_script
    from tcpwise.lab.playbook import plan_for

    sc = _lab_scenario(scenario_id)
    plan = plan_for(scenario_id)
    # The plan's lab scale first, the user's --set values over it.
    params = _params(sc, {**plan.overrides, **(overrides or {})})
    script = sc.script(params)
    cap = float("inf") if max_duration is None else max_duration
    if not full:
        max_duration = min(cap, plan.horizon) if plan.horizon else horizon_of(script, cap)
    elif max_duration is None:
        # Long kernel timers fire late: the timer wheel rounds a 60 s TIME_WAIT up to its level's granularity
        # (seconds at that range; measured 60.1-60.4 s here, up to ~64 s possible). Give them time to show.
        max_duration = script.duration + FULL_GRACE
    validate_script(script, max_duration)
    run = run_script(
        script,
        scenario=sc.id,
        title=getattr(sc, "title", ""),
        params=params,
        seed=seed,
        ipv6=ipv6,
        max_duration=max_duration,
        pcap=pcap,
        hooks=plan.lab_hooks(params, script),
        on_tick=progress,
    )
    cut = max_duration is not None and max_duration < script.duration
    if cut:
        run.events.append(
            Event(
                t=max_duration,
                host=script.hosts[0].name,
                kind=EventKind.NOTE,
                text=f"lab run stopped at {max_duration:g} s of the script's {script.duration:g} s "
                "(--full runs it all)",
            )
        )
    run.summary.update({"claim": sc.claim, "claim_zh": sc.claim_zh, "title_zh": sc.title_zh})
    with contextlib.suppress(Exception):  # a narrative written for complete model runs may not fit a cut run
        en, zh = sc.narrate(run, params)
        run.summary.update({"text": en, "text_zh": zh})
    try:
        checks = list(sc.check(run, params))
    except Exception as exc:  # a check written for the model may not read a kernel run: say so, don't crash
        checks = [
            Check(
                claim="scenario checks run on the lab record", ok=False, detail=f"{type(exc).__name__}: {exc}"
            )
        ]
    run.checks = _mark_unobserved(sc, params, script, plan, checks, max_duration if cut else None)
    run.summary["ok"] = run.ok
    if nothing_observed(run):
        # Cut before anything happened (--max-duration 0.1): not a pass. The narrative, written for a run
        # that happened, would tell a story of nothing ("CLOSE_WAIT for never"): say what happened instead.
        run.summary["ok"] = False
        text = (
            f"Nothing was checked: the lab run stopped at {max_duration:g} s, before any of the "
            f"{len(run.checks)} checks could be observed (a longer --max-duration, or --full, observes them)."
        )
        run.summary.update({"text": text, "text_zh": text})
    return run


def nothing_observed(run: Run) -> bool:
    """The run has checks and observed none of them: it says nothing about the kernel, and does not pass."""
    return bool(run.checks) and not any(c.observed for c in run.checks)


def _model_run(sc: Any, params: dict[str, Any], script: Any, plan: Any, seed: int = 1) -> Run:
    from tcpwise.sim.runner import run_script as sim_run

    _, run = sim_run(
        script,
        seed,
        scenario=sc.id,
        params=params,
        record_payload=sc.record_payload,
        setup=plan.sim_setup(params) if plan.sim_setup else None,
    )
    run.title = sc.title
    return run


def _mark_unobserved(
    sc: Any, params: dict[str, Any], script: Any, plan: Any, checks: list[Check], cut_at: float | None
) -> list[Check]:
    """A failed check is *not observed* when the model, given the same script, cannot make it true either: cut
    at the same time, the run was too short (``--full`` observes it); even uncut, the check reads numbers only
    the simulator's own applications record."""
    if all(c.ok for c in checks):
        return checks
    cut_ok: dict[str, bool] = {}
    full_ok: dict[str, bool] = {}
    try:
        model = _model_run(sc, params, script, plan)
        full_ok = {c.claim: c.ok for c in sc.check(model, params)}
        if cut_at is not None:
            model.events = [e for e in model.events if e.t <= cut_at + 1e-9]
            cut_ok = {c.claim: c.ok for c in sc.check(model, params)}
        else:
            cut_ok = full_ok
    except Exception:
        pass
    out = []
    for c in checks:
        if c.observed and not c.ok and cut_ok.get(c.claim) is False:
            if full_ok.get(c.claim) is False:
                why = "it reads numbers only the simulator's applications record (tcpwise sim shows them)"
            else:
                why = "the run stopped too early to observe it (tcpwise lab run --full)"
            rest = c.detail.removeprefix("not observed: ") if c.detail else ""
            detail = f"not observed: {why}" + (f"; {rest}" if rest and rest not in why else "")
            c = Check(c.claim, False, c.claim_zh, detail, observed=False)
        out.append(c)
    return out


def horizon_of(script: Any, max_duration: float, settle: float = SETTLE) -> float:
    """How long to run and compare: until ``settle`` s after the last step, within the script and the cap."""
    last = max((st.t for st in script.steps), default=0.0)
    return min(float(script.duration), max_duration, last + settle)


def conform_scenario(
    scenario_id: str,
    *,
    max_duration: float = 30.0,
    seed: int = 1,
    settle: float = SETTLE,
    ipv6: bool = False,
    model_hook: Any = None,
    full: bool = False,
) -> ConformResult:
    """Model vs kernel for one scenario (see the module docstring). ``model_hook(run)`` may alter the model's
    Run before the comparison (tests plant bugs with it)."""
    from tcpwise.lab.executor import run_script, validate_script
    from tcpwise.lab.playbook import plan_for
    from tcpwise.lab.segdiff import first_segment_diff, normalise, timing_diffs

    plan = plan_for(scenario_id)
    sc = _scenario(scenario_id)
    if plan.level == "none" or sc.build is None:
        return ConformResult(scenario_id, False, [], 0.0, level="none", reason=plan.reason or "no lab script")
    params = _params(sc, plan.overrides)
    script = sc.script(params)
    horizon = plan.horizon or horizon_of(script, max_duration, settle)
    if full:  # the whole script (e.g. 60 s of TIME_WAIT, so its length is timed too) and the timer slack
        horizon = float(script.duration) + FULL_GRACE
    validate_script(script, horizon)
    model = _model_run(sc, params, script, plan, seed)
    if model_hook is not None:
        model_hook(model)
    kernel = run_script(
        script,
        scenario=sc.id,
        title=sc.title,
        params=params,
        seed=seed,
        ipv6=ipv6,
        max_duration=horizon,
        hooks=plan.lab_hooks(params, script),
    )
    diffs = [d for d in compare(model, kernel, horizon) if d.what == "states"]
    seqs: dict[str, dict[str, list[str]]] = {}
    for h in model.hosts:
        ss, sf = sequences(model, h.name, horizon)
        ls, lf = sequences(kernel, h.name, horizon)
        seqs[h.name] = {"sim_states": ss, "lab_states": ls, "sim_flags": sf, "lab_flags": lf}
    res = ConformResult(
        scenario_id, False, diffs, horizon, level=plan.level, sequences=seqs, overrides=dict(plan.overrides)
    )
    # Settle the comparison a little before the horizon: a segment sent in the last moment may still be
    # on its way in one world and recorded in the other.
    cut = horizon - 2 * script.link.delay - 0.05
    m_segs, k_segs = normalise(model, cut), normalise(kernel, cut)
    res.segments_compared = sum(len(v) for v in m_segs.values())
    if plan.level == "segment":
        sd = first_segment_diff(m_segs, k_segs, plan.ignore)
        if sd is not None:
            res.segment = sd.to_dict()
            res.drilldown = sd.describe()
        steps = [st.t for st in script.steps]
        res.timing = [t.to_dict() for t in timing_diffs(model, kernel, m_segs, k_segs, steps, cut)]
    res.match = not diffs and res.segment is None and not res.timing
    if (plan.level == "state" or plan.ignore) and plan.reason:
        res.reason = plan.reason if res.match else None
    if not res.match:
        res.reason = _classify(res, plan)
        if plan.deviation:
            res.deviation = plan.deviation
    return res


def _classify(res: ConformResult, plan: Any) -> str:
    if plan.deviation:
        return f"documented Linux deviation: {plan.deviation}"
    if res.segment is not None:  # the segment that differs first usually explains the states that follow
        s = res.segment
        return (
            f"{s['host']} segment #{s['index']} of connection {s['conn']} differs: {', '.join(s['fields'])}"
        )
    if res.diffs:
        d = res.diffs[0]
        return f"{d.host} states differ ({d.ops[0] if d.ops else ''})"
    if res.timing:
        t = res.timing[0]
        return (
            f"timing: {t['host']} {t['label']} {t['kernel_s']:.3f} s on the kernel vs {t['model_s']:.3f} s "
            f"in the model (tolerance ±{t['tolerance_s']:.3f} s)"
        )
    return "differs"


def _one(args: tuple[str, float, float, int, bool, bool]) -> ConformResult:
    """Worker: conform one scenario, retrying a differing one (a loaded machine can change a kernel choice that
    depends on how fast the application reacts, e.g. a FIN riding on a delayed ACK)."""
    sid, max_duration, settle, retries, ipv6, full = args
    from tcpwise.errors import UsageError

    res: ConformResult | None = None
    for attempt in range(1, retries + 2):
        try:
            res = conform_scenario(sid, max_duration=max_duration, settle=settle, ipv6=ipv6, full=full)
        except UsageError:
            raise
        except Exception as exc:  # one broken scenario must not hide the others' results
            res = ConformResult(sid, False, [], max_duration, error=f"{type(exc).__name__}: {exc}")
            res.reason = res.error
        res.attempts = attempt
        if res.match or res.level == "none" or res.deviation:
            break
    assert res is not None
    return res


def conform_all(
    ids: list[str] | None = None,
    *,
    max_duration: float = 30.0,
    settle: float = SETTLE,
    retries: int = 0,
    ipv6: bool = False,
    jobs: int = 1,
    progress: Any = None,
    full: bool = False,
) -> list[ConformResult]:
    """Conform each scenario (default: the whole catalogue, where scenarios the kernel cannot play come back as
    level "none" with the reason; one of those named in ``ids`` is refused with a UsageError, as ``lab run``).
    ``jobs`` > 1 runs that many scenarios at once, each in its own worker process and namespaces.
    ``progress(done, total, result)`` is called as results come in."""
    from tcpwise.lab.netns import check_capabilities

    check_capabilities()
    if ids is None:
        from tcpwise.scenarios import catalogue

        ids = [s.id for s in catalogue()]
    else:
        for sid in ids:
            # Unknown id, or one named that cannot run on the kernel: one-line error before anything runs, as
            # `lab run ID` says it (the whole catalogue lists those as "not playable" instead).
            _lab_scenario(sid)
    tasks = [(sid, max_duration, settle, retries, ipv6, full) for sid in ids]
    results: dict[str, ConformResult] = {}
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            results[task[0]] = r = _one(task)
            if progress is not None:
                progress(len(results), len(tasks), r)
    else:
        _parallel(tasks, jobs, results, progress)
    return [results[sid] for sid in ids]


def _parallel(
    tasks: list[tuple[str, float, float, int, bool, bool]],
    jobs: int,
    results: dict[str, ConformResult],
    progress: Any,
) -> None:
    import concurrent.futures as cf
    import multiprocessing as mp

    # forkserver: workers start from a clean process (no inherited selectors, sockets or signal state) and each
    # lab run in a worker handles its own Ctrl-C cleanup (the whole process group gets the signal).
    ctx = mp.get_context("forkserver")
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futs = {pool.submit(_one, t): t[0] for t in tasks}
        try:
            for fut in cf.as_completed(futs):
                sid = futs[fut]
                try:
                    results[sid] = fut.result()
                except Exception as exc:
                    from tcpwise.errors import UsageError

                    if isinstance(exc, UsageError):
                        raise
                    results[sid] = ConformResult(sid, False, [], 0.0, error=f"{type(exc).__name__}: {exc}")
                if progress is not None:
                    progress(len(results), len(tasks), results[sid])
        except KeyboardInterrupt:
            for f in futs:
                f.cancel()
            raise


# --- output ----------------------------------------------------------------------------------------------------
def _mark(r: ConformResult) -> str:
    if r.error:
        return "ERROR"
    if r.level == "none":
        return "-"
    if r.match:
        return "yes"
    return "dev" if r.deviation else "NO"


def format_table(results: list[ConformResult], width: int = 80) -> str:
    """The per-scenario table: id, match, level, segments compared, reason — within ``width`` columns."""
    head = f"{'scenario':24} {'match':5} {'level':7} {'segs':>4}  reason"
    lines = [head, "-" * min(width, 100)]
    room = max(20, width - 45)
    for r in results:
        why = r.error or r.reason or ""
        if len(why) > room:
            why = why[: room - 1] + "…"
        segs = str(r.segments_compared) if r.level != "none" else ""
        lines.append(f"{r.scenario:24} {_mark(r):5} {r.level:7} {segs:>4}  {why}".rstrip())
    playable = [r for r in results if r.level != "none"]
    n = sum(r.match for r in results)
    dev = sum(bool(r.deviation) and not r.match for r in results)
    seg = sum(r.match and r.level == "segment" for r in results)
    lines.append(f"{n}/{len(results)} scenarios conform ({seg} segment by segment)")
    tail = f"{len(results) - len(playable)} not playable on the kernel"
    if dev:
        tail = f"{dev} differ by a documented Linux deviation; " + tail
    lines.append(tail)
    return "\n".join(lines)


def format_drilldown(results: list[ConformResult], width: int | None = 80) -> str:
    """For each differing scenario: its first differing segment with context, or its state/timing difference.
    State sequences are wrapped to ``width`` columns (None: one line each)."""
    import textwrap

    out: list[str] = []

    def states(label: str, seq: list[str]) -> list[str]:
        line = f"{label} {' '.join(seq)}"
        if width is None or len(line) <= width:
            return [line]
        return textwrap.wrap(line, width, subsequent_indent=" " * (len(label) + 1), break_on_hyphens=False)

    for r in results:
        if r.match or r.level == "none":
            continue
        out.append(f"{r.scenario}: {r.reason or r.error or ''}")
        if r.drilldown:
            out += ["  " + x for x in r.drilldown]
        for d in r.diffs[:2]:
            out += states(f"  {d.host} states: model ", d.sim)
            out += states(f"  {' ' * len(d.host)} states: kernel", d.lab)
        for t in r.timing[:3]:
            out.append(
                f"  timing {t['host']} {t['label']}: model {t['model_s']:.3f} s, kernel {t['kernel_s']:.3f} s "
                f"after the step at {t['since_step']:g} s (tolerance ±{t['tolerance_s']:.3f} s)"
            )
    return "\n".join(out)


def print_progress_line(done: int, total: int, r: ConformResult, stream: Any = None) -> None:
    print(f"[{done}/{total}] {r.scenario}: {_mark(r)}", file=stream or sys.stderr, flush=True)
