"""Running behaviours against a target: the per-behaviour bookkeeping, the picture, and the whole probe run.

Theory of operation
-------------------
:func:`probe` runs behaviours one after the other on one :class:`~tcpwise.stack.host.Host` (sequentially, so
that one behaviour's leftovers — a SYN queue full of half-open entries, an orphan FIN_WAIT_1 — cannot decide
another's verdict). For each one :func:`run_behaviour`

1. notes the target processes' open fds and RSS, and where the event logs stand;
2. runs the behaviour's script (bounded by its deadline plus a margin);
3. lets the target settle for 300 ms and takes what it *left*: its socket states on the behaviour's
   connections (sock_diag) and the growth of its fd count;
4. builds a :class:`tcpwise.events.Run` of the behaviour's connection with both views — the probe's lane from
   its own event log, the target's lane from the same segments seen from the other side of the TUN device
   plus its socket states from sock_diag — for the shared renderers;
5. cleans up: removes the behaviour's hooks and resets every connection it opened (RST), so the target's
   kernel frees them before the next behaviour starts.

:func:`run_in_namespace` is the command line's path: it builds the namespace, the TUN device and the target
process (:mod:`tcpwise.probe.world`), waits until the target listens, and tears everything down on every exit
path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tcpwise.endpoint import LINUX, EndpointConfig
from tcpwise.errors import UsageError
from tcpwise.events import Event, Run
from tcpwise.events import Host as RunHost
from tcpwise.probe.behaviours import BEHAVIOURS, Behaviour
from tcpwise.probe.core import Ctx, Observer, Options, Outcome, Result, TargetView, Tracker
from tcpwise.stack import Host
from tcpwise.vocab import EventKind

__all__ = [
    "probe",
    "run_behaviour",
    "build_run",
    "Target",
    "run_in_namespace",
    "PROBE_NAME",
    "TARGET_NAME",
    "NET",
]

PROBE_NAME = "probe"
TARGET_NAME = "target"

# The TUN subnet: the probe's host is .1 / ::1, the target namespace's side of the device is .254 / ::fe.
NET = {
    "probe4": "198.18.64.1",
    "target4": "198.18.64.254",
    "probe6": "fd00:64::1",
    "target6": "fd00:64::fe",
}

# The probe's own connections: window scaling and a 1 MiB buffer so bulk responses do not stall on our side.
PROBE_CFG = LINUX.with_(wscale=7, rcv_buf=1 << 20)


async def probe(
    host: Host,
    observer: Observer,
    opts: Options,
    behaviours: Sequence[str],
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Run ``behaviours`` (names) in order against the target behind ``host``; returns one Result each."""
    tracker = Tracker(host, opts.port)
    host.hooks.insert(0, tracker)
    names = {a: PROBE_NAME for a in host.addrs}
    view = TargetView(observer, names, TARGET_NAME)
    results = []
    try:
        for name in behaviours:
            res = await run_behaviour(host, observer, opts, tracker, view, BEHAVIOURS[name])
            results.append(res)
            if on_result is not None:
                on_result(res)
    finally:
        if tracker in host.hooks:
            host.hooks.remove(tracker)
    return results


async def run_behaviour(
    host: Host, observer: Observer, opts: Options, tracker: Tracker, view: TargetView, beh: Behaviour
) -> Result:
    ctx = Ctx(host, opts, tracker, view)
    fds0, rss0 = observer.usage()
    hooks0 = list(host.hooks)
    before = set(host.connections())
    log0, view0, t_begin = len(host.log), len(view.events), host.now()
    try:
        out = await asyncio.wait_for(beh.run(ctx), opts.deadline + 20.0)
    except (OSError, TimeoutError) as exc:
        out = _broken(ctx, beh, exc)
    await ctx.sleep(0.3)
    states = view.states_for(out.lports | out.left_ports)
    fds1, rss1 = observer.usage()
    left_fds = None if fds0 is None or fds1 is None else max(0, fds1 - fds0)
    if opts.watch > 0:  # only the picture gains: the verdict and what was left are already taken
        ports = out.lports | out.left_ports
        await ctx.until(lambda: not view.states_for(ports), host.now() + opts.watch)
    t_end = host.now()
    evidence = dict(out.evidence)
    if rss0 is not None and rss1 is not None:
        evidence["rss_kib_growth"] = rss1 - rss0
    if out.finding is not None:
        out.finding.evidence.update({"fds_left": left_fds, "states_left": states, **evidence})
    run = build_run(beh, host, view, log0, view0, out, opts, t_begin, t_end, ctx.notes)
    # Clean up: our hooks go, every connection this behaviour opened is reset (the target frees its side).
    host.hooks[:] = hooks0
    if out.cleanup is not None:
        out.cleanup()
    for c in ctx.conns:
        ctx.abort(c)
    now = host.now()
    for ep in list(host.connections()):
        if ep not in before and ep.state.value != "CLOSED":
            ep.abort(now)
            host.kick(ep)
    await ctx.until(lambda: not view.states_for(out.lports | out.left_ports), host.now() + 1.0)
    closed = out.closed
    return Result(
        name=beh.name,
        verdict="pass" if out.passed else "fail",
        closed_after_s=None if closed is None else max(0.0, closed[0] - out.t0),
        closed_by=None if closed is None else closed[1],
        how=None if closed is None else closed[2],
        states=states,
        fds=left_fds,
        finding=out.finding,
        evidence=evidence,
        run=run,
    )


def _broken(ctx: Ctx, beh: Behaviour, exc: BaseException) -> Outcome:
    """The behaviour could not even start (connect refused, timed out): a failing verdict that says so."""
    from tcpwise.doctor.findings import Finding

    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Outcome(
        False,
        ctx.now(),
        set(),
        finding=Finding(
            id="unreachable",
            severity="crit",
            pid=None,
            message=f"{beh.name}: the probe could not complete its script against the target ({text})",
            advice="check that the target listens on the address and port given, and stays up",
        ),
    )


# ----------------------------------------------------------------------------------------------------------
# the picture: both views of one behaviour's connection
# ----------------------------------------------------------------------------------------------------------
def _ours(seg_sport: int, seg_dport: int, port: int, lports: set[int]) -> bool:
    return (seg_sport in lports and seg_dport == port) or (seg_dport in lports and seg_sport == port)


def _label_ours(conn: str | None, lports: set[int]) -> bool:
    if conn is None:
        return True
    return any(f":{p}>" in conn or conn.endswith(f":{p}") for p in lports)


def build_run(
    beh: Behaviour,
    host: Host,
    view: TargetView,
    log0: int,
    view0: int,
    out: Outcome,
    opts: Options,
    t_begin: float,
    t_end: float,
    notes: list[tuple[float, str]],
) -> Run:
    """The Run of one behaviour: the probe's events and, mirrored across the TUN device, the target's."""
    lports, port = out.lports, opts.port
    events: list[Event] = []
    for e in host.log[log0:]:
        seg = e.segment
        if seg is not None:
            if not _ours(seg.sport, seg.dport, port, lports):
                continue
            if e.kind == "recv" or (e.kind == "drop" and e.host == TARGET_NAME):
                events.append(
                    Event(e.t, TARGET_NAME, EventKind.SEND, segment=seg)
                )  # what the target put on the wire
                events.append(e)
            elif e.kind == "send":
                events.append(e)
                events.append(Event(e.t, TARGET_NAME, EventKind.RECV, segment=seg))
            elif e.kind == "drop":  # withheld by the probe: produced by its endpoint, never sent
                events.append(Event(e.t, PROBE_NAME, EventKind.SEND, segment=seg))
                events.append(e)
        elif _label_ours(e.conn, lports):
            events.append(e)
    for e in view.events[view0:]:
        if e.conn is not None and any(e.conn.endswith(f":{p}") for p in lports):
            events.append(e)
    events = [dataclasses.replace(e, t=round(max(0.0, e.t - t_begin), 6)) for e in events]
    events.sort(key=lambda e: e.t)  # stable: the order above wins among equal times
    probe_addr = host.addr_for(opts.target_addr)
    return Run(
        scenario=f"probe-{beh.name}",
        title=f"probe {beh.name}: {beh.summary}",
        world="probe",
        params={"deadline": opts.deadline, "interval": opts.interval, "port": port},
        hosts=[
            RunHost(PROBE_NAME, probe_addr, "tcpwise probe"),
            RunHost(TARGET_NAME, opts.target_addr, "server"),
        ],
        events=events,
        summary={"text": f"{beh.summary}; passes when {beh.passes_when}.", "values": dict(out.evidence)},
    )


# ----------------------------------------------------------------------------------------------------------
# the command line's path: a target in a namespace
# ----------------------------------------------------------------------------------------------------------
@dataclass
class Target:
    """Where the target is: a command tcpwise starts (``serve``) or a listener in an existing namespace."""

    port: int
    serve: str | None = None
    netns: str | None = None
    addr: str | None = None  # the address to connect to (default: the TUN's kernel side in that namespace)
    ipv6: bool = False
    sysctls: dict[str, str] | None = None
    startup: float = 10.0

    def to_dict(self) -> dict[str, object]:
        return {"serve": self.serve, "netns": self.netns, "addr": self.addr, "port": self.port}


def _wait_listening(observer: Observer, proc_alive: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if observer.listening():
            return True
        if not proc_alive():
            return False
        time.sleep(0.05)
    return False


def run_in_namespace(
    target: Target,
    behaviours: Sequence[str],
    opts_kw: dict[str, object],
    on_result: Callable[[Result], None] | None = None,
    cfg: EndpointConfig = PROBE_CFG,
) -> list[Result]:
    """Build the namespace and TUN device, start or find the target, run the behaviours, tear down."""
    from tcpwise.lab.netns import ns_pids
    from tcpwise.probe.core import DiagObserver
    from tcpwise.probe.world import World, check_capabilities, tun_into, tun_name
    from tcpwise.stack import TunLink

    check_capabilities()
    v6 = target.ipv6
    probe_addrs = [NET["probe4"], NET["probe6"]]
    with World() as world:
        if target.netns is not None:
            ns = target.netns
            if not os.path.exists(f"/run/netns/{ns}"):
                raise UsageError(f"network namespace {ns!r} does not exist (see `ip netns list`)")
        else:
            ns = world.add_ns("t", target.sysctls)
        dev = tun_into(ns, tun_name(), [NET["target4"] + "/24", NET["target6"] + "/64"])
        addr = target.addr or (NET["target6"] if v6 else NET["target4"])
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            raise UsageError(f"--addr {addr!r} is not an IP address") from None
        if target.netns is not None and target.sysctls:
            for k, v in target.sysctls.items():
                World.sysctl(ns, k, v)
        me = os.getpid()

        def pids() -> list[int]:
            return [p for p in ns_pids(ns) if p != me]

        proc = world.spawn(ns, target.serve) if target.serve is not None else None
        alive = proc.alive if proc is not None else (lambda: True)
        observer = DiagObserver(ns, target.port, probe_addrs, pids, alive if proc is not None else None)
        try:
            if not _wait_listening(observer, alive, target.startup):
                if proc is not None and not proc.alive():
                    tail = proc.output_tail().replace("\n", " | ")
                    raise UsageError(
                        f"the target command exited with code {proc.popen.returncode} before listening on port "
                        f"{target.port}: {tail or '(no output)'}"
                    )
                where = f"namespace {ns}" if target.netns else "its namespace"
                raise UsageError(
                    f"nothing listens on port {target.port} in {where} after {target.startup:g} s"
                )
            opts = Options(port=target.port, target_addr=addr, cfg=cfg, **opts_kw)  # type: ignore[arg-type]

            async def main() -> list[Result]:
                host = Host(
                    TunLink(dev),
                    probe_addrs,
                    cfg,
                    name=PROBE_NAME,
                    record=True,
                    peer_names={NET["target4"]: TARGET_NAME, NET["target6"]: TARGET_NAME, addr: TARGET_NAME},
                )
                host.start()
                try:
                    return await probe(host, observer, opts, behaviours, on_result)
                finally:
                    host.abort_all()
                    host.close()

            return asyncio.run(main())
        finally:
            observer.close()
            dev.close()
