"""Run a scenario :class:`~tcpwise.script.Script` on the real kernel and record it as an events.Run.

Theory of operation
-------------------
1. Build the topology (:mod:`tcpwise.lab.netns`): script host 1 -> A, host 2 -> B. Write each host's
   EndpointConfig (Linux defaults + the script's overrides) into its namespace's sysctls via
   :data:`tcpwise.endpoint.config.SYSCTL_OF`; socket-level knobs (keepalive, user_timeout, mss) travel with the
   socket commands. ``time_wait`` has no sysctl (TCP_TIMEWAIT_LEN is compiled in): a script asking for another
   value runs with 60 s anyway and the run says so in a note.
2. Create the fault table at R (:mod:`tcpwise.lab.nft`), the capture socket and the delay line (R's namespace),
   one sock_diag recorder per host, and start one agent process per host (:mod:`tcpwise.lab.agent`).
3. One selector loop, one clock (``time.monotonic``): it sends each step's command at its time, reads agent
   reports, captured frames and TUN packets as they come, releases delayed packets when due, and polls the
   hosts' socket states every ``poll_interval``.
4. Turn it all into one ``Run(world="lab")``: ``app`` events from the agents, ``state`` events from the
   recorders, ``send``/``recv``/``drop`` from the capture, ``note`` for Note/Crash/Reboot steps.

Every exit path (normal, exception, Ctrl-C, SIGTERM) kills the agents, deletes the fault table and the four
namespaces; a SIGKILLed executor leaves namespaces that ``tcpwise lab clean`` removes. The run is bounded by the
script's duration, or by ``max_duration`` when given (which may exceed it: kernel timers fire late).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import resource
import select
import selectors
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import IO, Any, BinaryIO, cast

import tcpwise.script as S
from tcpwise.endpoint.config import LINUX, SYSCTL_OF, EndpointConfig
from tcpwise.errors import MissingCapability, UsageError
from tcpwise.events import Event, Host, Run
from tcpwise.lab.capture import Capture, Frame, parse_frame, segment_key, write_pcap
from tcpwise.lab.forward import Forwarder, Route
from tcpwise.lab.netns import TUN_DEV, Topology, check_capabilities, in_netns
from tcpwise.lab.nft import Faults
from tcpwise.lab.observe import StateRecorder, TraceStates, merge_traced, syn_queue_at_syn
from tcpwise.lab.owner import guarded_run, shielded
from tcpwise.vocab import AppCall, DropReason, EventKind, TcpState, kernel_state_name

# Fields of an agent report that become fields of the app event (tcpwise.events.Event).
_APP_FIELDS = ("errno", "nbytes", "port", "backlog", "why", "value", "text")

__all__ = [
    "run_script",
    "run_script_full",
    "sysctls_for",
    "host_sysctls",
    "socket_opts_for",
    "validate_script",
    "LabRun",
    "LabHooks",
    "AgentProc",
]

AGENT_START_TIMEOUT = 15.0
# Socket-level knobs that go with each socket command (tcp(7), socket(7)).
_SOCKET_KNOBS = ("keepalive", "keepalive_time", "keepalive_intvl", "keepalive_probes", "user_timeout", "mss")


# Host config keys that are not EndpointConfig fields: the simulator's ephemeral port range
# (net.ipv4.ip_local_port_range, per namespace) and the application's descriptor limit (RLIMIT_NOFILE).
_HOST_KEYS = ("port_range", "nofile")


def host_config(spec: S.HostSpec) -> EndpointConfig:
    cfg = {k: v for k, v in spec.config.items() if k not in _HOST_KEYS}
    try:
        return dataclasses.replace(LINUX, **cfg)
    except TypeError as exc:
        raise UsageError(f"host {spec.name}: unknown EndpointConfig field ({exc})") from None


def host_sysctls(spec: S.HostSpec) -> dict[str, str]:
    """Every sysctl the host's namespace gets: its EndpointConfig's, and its port range."""
    out = sysctls_for(host_config(spec))
    pr = spec.config.get("port_range")
    if pr is not None:
        lo, hi = (int(x) for x in pr)
        out["net.ipv4.ip_local_port_range"] = f"{lo} {hi}"
    return out


def _sysctl_value(v: Any) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return str(int(round(v)))
    return str(v)


def sysctls_for(cfg: EndpointConfig) -> dict[str, str]:
    """EndpointConfig -> {sysctl: value} for every knob that is a per-namespace sysctl."""
    out: dict[str, str] = {}
    for name, key in SYSCTL_OF.items():
        if key is None:
            continue
        out[key] = _sysctl_value(getattr(cfg, name))
    # The receive buffer: tcp_rmem[1] is the default buffer, of which the window gets tcp_full_space() = half
    # (default scaling ratio), and tcp_rmem[2] the largest one, which sets the window scale shift. A namespace
    # otherwise inherits the root namespace's values (this host's maximum may not be Linux's 6 MiB).
    default = 2 * cfg.rcv_buf
    out["net.ipv4.tcp_rmem"] = f"4096 {default} {max(default, cfg.rmem_max)}"
    return out


def socket_opts_for(cfg: EndpointConfig) -> dict[str, Any]:
    return {k: getattr(cfg, k) for k in _SOCKET_KNOBS}


class AgentProc:
    def __init__(self, host: str, ns: str, nofile: int | None = None) -> None:
        self.host = host
        env = dict(os.environ)
        src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "tcpwise.lab.agent"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
            preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)))
            if nofile
            else None,
        )
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""
        self.ready = False

    def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # the host crashed: its application is gone

    def read(self) -> list[dict[str, Any]]:
        assert self.proc.stdout is not None
        try:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
        except BlockingIOError:
            return []
        except OSError:
            chunk = b""
        if not chunk:
            return []
        self.buf += chunk
        out = []
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        for f in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                if f is not None:
                    f.close()


@dataclasses.dataclass
class LabHooks:
    """What a scenario needs in the lab beyond its script (:mod:`tcpwise.lab.playbook`): ``setup(ex)`` runs once
    the topology, fault table and delay line exist (e.g. a stateful firewall at R, a hold-back rule in the delay
    line), ``timed`` are ``(t, fn(ex, t))`` calls at script time ``t`` (e.g. inject a crafted segment)."""

    setup: Callable[[_Executor], None] | None = None
    timed: tuple[tuple[float, Callable[[_Executor, float], None]], ...] = ()


@dataclasses.dataclass
class LabRun:
    """Everything the executor saw, before it becomes a Run."""

    run: Run
    frames: list[Frame]
    run_id: str


def run_script(
    script: S.Script,
    *,
    scenario: str = "custom",
    title: str = "",
    params: dict[str, Any] | None = None,
    seed: int | None = None,
    max_duration: float | None = None,
    ipv6: bool = False,
    pcap: IO[bytes] | None = None,
    poll_interval: float = 0.002,
    delay: float | None = None,
    on_start: Any = None,
    hooks: LabHooks | None = None,
    on_tick: Callable[[float, float], None] | None = None,
) -> Run:
    """Execute ``script`` in a fresh lab and return the recorded Run (world="lab")."""
    return run_script_full(
        script,
        scenario=scenario,
        title=title,
        params=params,
        seed=seed,
        max_duration=max_duration,
        ipv6=ipv6,
        pcap=pcap,
        poll_interval=poll_interval,
        delay=delay,
        on_start=on_start,
        hooks=hooks,
        on_tick=on_tick,
    ).run


def run_script_full(
    script: S.Script,
    *,
    scenario: str = "custom",
    title: str = "",
    params: dict[str, Any] | None = None,
    seed: int | None = None,
    max_duration: float | None = None,
    ipv6: bool = False,
    pcap: IO[bytes] | None = None,
    poll_interval: float = 0.002,
    delay: float | None = None,
    on_start: Any = None,
    hooks: LabHooks | None = None,
    on_tick: Callable[[float, float], None] | None = None,
) -> LabRun:
    check_capabilities()
    validate_script(script, max_duration)  # before anything is built: no namespace for a run that cannot end
    topo = Topology(ipv6=ipv6, third_host=len(script.hosts) == 3)
    # The delay line and the state polling are timing-critical user-space work: run them ahead of ordinary
    # processes (root may lower its nice value; agents inherit it). A busy machine still shows in
    # summary.values.delay_late_max_ms.
    with contextlib.suppress(OSError):
        os.nice(-10)
    # SIGTERM takes Ctrl-C's path; the first signal stops the run, later ones cannot interrupt its cleanup.
    with guarded_run():
        ex = _Executor(
            script,
            topo,
            ipv6=ipv6,
            poll_interval=poll_interval,
            delay=script.link.delay if delay is None else delay,
            seed=seed or 1,
            hooks=hooks or LabHooks(),
        )
        try:
            ex.setup()
            if on_start is not None:
                on_start(topo)
            end = script.duration if max_duration is None else max_duration
            ex.on_tick = on_tick
            ex.loop(end)
            run = ex.build_run(scenario, title, params or {}, seed, end)
            if pcap is not None:
                n = write_pcap(ex.capture.frames if ex.capture else [], cast(BinaryIO, pcap))
                run.summary.setdefault("values", {})["pcap_packets"] = n
            return LabRun(run, ex.capture.frames if ex.capture else [], topo.run_id)
        finally:
            with shielded(topo.run_id, topo.leftovers):
                ex.teardown()


# Knobs of newer kernels: on a kernel without them the run goes on (and says so in summary.values).
_OPTIONAL_SYSCTLS = frozenset({"net.ipv4.tcp_syn_linear_timeouts"})

# The longest run the lab accepts: a script that would hold namespaces longer is refused before it starts.
MAX_LAB_DURATION = 3600.0


def _finite(name: str, v: Any, lo: float = 0.0, hi: float | None = None) -> None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return
    if not math.isfinite(v) or v < lo or (hi is not None and v > hi):
        rng = f"{lo:g}..{hi:g}" if hi is not None else f">= {lo:g}"
        raise UsageError(f"{name}={v!r} cannot run in the lab (must be finite, {rng})")


def validate_script(script: S.Script, max_duration: float | None = None) -> None:
    """Refuse, with one line, a script the kernel cannot run or that could not end: non-finite or negative
    times, a duration beyond :data:`MAX_LAB_DURATION`, a link delay or impairment out of range, or a host knob
    outside what its sysctl or socket option accepts."""
    if not 2 <= len(script.hosts) <= 3:
        raise UsageError(f"the lab runs two- and three-host scripts (this one has {len(script.hosts)} hosts)")
    end = script.duration if max_duration is None else max_duration
    _finite("duration", end, 0.0, MAX_LAB_DURATION)
    link = script.link
    _finite("delay", link.delay, 0.0, 10.0)
    _finite("jitter", link.jitter, 0.0, 10.0)
    for name in ("loss", "duplicate", "reorder"):
        _finite(name, getattr(link, name), 0.0, 1.0)
    for st in script.steps:
        _finite(f"{type(st).__name__} step time", st.t, 0.0, MAX_LAB_DURATION)
        n = getattr(st, "nbytes", None)
        if isinstance(n, int) and not 0 <= n <= 64 << 20:
            raise UsageError(f"Send of {n} bytes cannot run in the lab (0..64 MiB)")
    for spec in script.hosts:
        cfg = host_config(spec)
        for f in dataclasses.fields(cfg):
            v = getattr(cfg, f.name)
            hi = _KNOB_MAX.get(f.name)
            _finite(f"{spec.name}.{f.name}", v, 0.0, hi)


# Upper bounds the kernel accepts (tcp(7), ip-sysctl.rst); lower bound 0 for every numeric knob.
_KNOB_MAX: dict[str, float] = {
    "keepalive_time": 32767,
    "keepalive_intvl": 32767,
    "keepalive_probes": 127,
    "syn_retries": 127,
    "synack_retries": 255,
    "retries1": 255,
    "retries2": 255,
    "orphan_retries": 255,
    "fin_timeout": 3600,
    "user_timeout": 2147483,
    "mss": 65535,
    "wscale": 14,
    "syncookies": 2,
    "tw_reuse": 2,
    "somaxconn": 1 << 20,
    "max_syn_backlog": 1 << 20,
    "backlog": 1 << 20,
    "rcv_buf": 1 << 30,
    "rmem_max": 1 << 30,
    "snd_buf": 1 << 30,
    "time_wait": 1e9,
    "rto_initial": 120.0,
    "rto_min": 120.0,
    "rto_max": 3600.0,
    "challenge_ack_limit": 1 << 31,
}


class _Executor:
    def __init__(
        self,
        script: S.Script,
        topo: Topology,
        *,
        ipv6: bool,
        poll_interval: float,
        delay: float,
        seed: int,
        hooks: LabHooks | None = None,
    ) -> None:
        self.script = script
        self.topo = topo
        self.ipv6 = ipv6
        self.poll_interval = poll_interval
        self.delay = delay
        self.seed = seed
        self.hooks = hooks or LabHooks()
        # progress callback (elapsed, end), about four times a second
        self.on_tick: Callable[[float, float], None] | None = None
        self.pending: dict[str, list[dict[str, Any]]] = {}  # agent reports read early (see _await_report)
        self.raw_socks: dict[tuple[str, bool], Any] = {}  # (host, IPv6) -> raw socket (raw_send)
        self.missing_sysctls: set[str] = set()  # optional knobs this kernel does not have
        # Script host names -> topology hosts, in order.
        self.map = {spec.name: tname for spec, tname in zip(script.hosts, ("A", "B", "C"), strict=False)}
        self.rev = {v: k for k, v in self.map.items()}
        self.cfg = {h.name: host_config(h) for h in script.hosts}
        self.faults = Faults(topo.router_ns, topo.run_id)
        self.capture: Capture | None = None
        self.fwd: Forwarder | None = None
        self.recorders: dict[str, StateRecorder] = {}
        self.trace: TraceStates | None = None  # exact state times from tracepoints, when readable
        self.agents: dict[str, AgentProc] = {}
        self.sel = selectors.DefaultSelector()
        self.events: list[Event] = []
        self.t0 = 0.0
        self.crashed: set[str] = set()
        self.rule_no = 0
        self.partitions: dict[tuple[str, str], str] = {}
        self.down: dict[str, list[tuple[float, float]]] = {}  # host -> [(crash t, reboot t)]
        self.app_states: list[
            tuple[float, str, str, str]
        ] = []  # (t, host, conn, state) measured by the agents

    def addr(self, name: str) -> str:
        return self.topo.hosts[self.map[name]].addr(self.ipv6)

    # --- set-up / tear-down ----------------------------------------------------------------------------------
    def setup(self) -> None:
        self.topo.create()
        for spec in self.script.hosts:
            for key, value in host_sysctls(spec).items():
                try:
                    self.topo.set_sysctl(self.map[spec.name], key, value)
                except MissingCapability:
                    if key not in _OPTIONAL_SYSCTLS:
                        raise
                    self.missing_sysctls.add(key)
        self.faults.create()
        link = self.script.link
        if link.loss > 0:
            a, b = (h.name for h in self.script.hosts[:2])
            self.faults.loss("loss-ab", self.addr(a), self.addr(b), link.loss)
            self.faults.loss("loss-ba", self.addr(b), self.addr(a), link.loss)
        routes = {}
        for h in self.topo.hosts.values():
            routes[h.addr4] = Route(h.router_if, h.mac)
            routes[h.addr6] = Route(h.router_if, h.mac)
        with in_netns(self.topo.router_ns):
            self.capture = Capture(tuple(h.router_if for h in self.topo.hosts.values()))
            self.fwd = Forwarder(
                TUN_DEV, routes, self.delay, link.jitter, link.duplicate, self.seed, link.reorder
            )
        self.sel.register(self.capture.fileno(), selectors.EVENT_READ, ("cap", None))
        self.sel.register(self.fwd.fileno(), selectors.EVENT_READ, ("tun", None))
        names = {}
        for h in self.topo.hosts.values():
            names[h.addr4] = self.rev[h.name]
            names[h.addr6] = self.rev[h.name]
        if not any(isinstance(st, (S.Crash, S.Reboot)) for st in self.script.steps):
            ns = {spec.name: self.topo.hosts[self.map[spec.name]].ns for spec in self.script.hosts}
            self.trace = TraceStates.try_start(
                ns, lambda h: self.recorders[h].sock if h in self.recorders else None
            )
        for spec in self.script.hosts:
            self._start_host(spec.name, names)
        if self.hooks.setup is not None:
            self.hooks.setup(self)

    def _start_host(self, name: str, names: dict[str, str] | None = None) -> None:
        th = self.topo.hosts[self.map[name]]
        import socket as _socket

        fams = (_socket.AF_INET6,) if self.ipv6 else (_socket.AF_INET,)
        rec = self.recorders.get(name) or StateRecorder(name, names or {}, families=fams)
        with in_netns(th.ns):
            rec.open()
        self.recorders[name] = rec
        spec = next(h for h in self.script.hosts if h.name == name)
        agent = AgentProc(name, th.ns, nofile=spec.config.get("nofile"))
        self.agents[name] = agent
        deadline = time.monotonic() + AGENT_START_TIMEOUT
        while not agent.ready:
            if time.monotonic() > deadline or agent.proc.poll() is not None:
                raise RuntimeError(f"lab agent for host {name} did not start")
            for rep in agent.read():
                if rep.get("ready"):
                    agent.ready = True
            time.sleep(0.005)
        self.sel.register(agent.proc.stdout.fileno(), selectors.EVENT_READ, ("agent", name))  # type: ignore[union-attr]

    def teardown(self) -> None:
        for sock in self.raw_socks.values():
            with contextlib.suppress(OSError):
                sock.close()
        if self.trace is not None:
            self.trace.close()
        for a in self.agents.values():
            a.kill()
        for r in self.recorders.values():
            r.close()
        if self.capture is not None:
            self.capture.close()
        if self.fwd is not None:
            self.fwd.close()
        with contextlib.suppress(Exception):
            self.faults.destroy()
        self.topo.destroy()

    # --- the loop ----------------------------------------------------------------------------------------------
    def loop(self, end: float) -> None:
        # Script steps and the hooks' timed calls, in time order (a step before a hook at the same instant).
        steps: list[tuple[float, int, int, Any]] = [
            (st.t, 0, n, st) for n, st in enumerate(self.script.steps)
        ]
        steps += [(t, 1, n, fn) for n, (t, fn) in enumerate(self.hooks.timed)]
        steps.sort(key=lambda x: x[:3])
        i = 0
        self.t0 = t0 = time.monotonic()
        next_poll = next_tick = t0
        while True:
            now = time.monotonic()
            rel = now - t0
            if rel >= end:
                break
            if self.on_tick is not None and now >= next_tick:
                self.on_tick(rel, end)
                next_tick = now + 0.25
            while i < len(steps) and steps[i][0] <= rel:
                t, kind, _n, what = steps[i]
                if kind == 0:
                    self.step(what, now)
                else:
                    what(self, t)
                i += 1
            assert self.fwd is not None and self.capture is not None
            self.fwd.release(now)
            # Read the capture right after a release, so a delivery is stamped before the states it causes.
            self.capture.read()
            if now >= next_poll:
                # A state change is stamped with the time of the dump that saw it (the upper bound of when it
                # happened), never with the loop's start: the change must not precede the segment causing it.
                self.poll()
                next_poll = now + self.poll_interval
            wake = [t0 + end, next_poll]
            if i < len(steps):
                wake.append(t0 + steps[i][0])
            due = self.fwd.next_due()
            if due is not None:
                wake.append(due)
            timeout = max(0.0, min(wake) - time.monotonic())
            for key, _mask in self.sel.select(timeout):
                kind, arg = key.data
                if kind == "cap":
                    self.capture.read()
                elif kind == "tun":
                    self.fwd.read(time.monotonic())
                else:
                    self._agent_reports(arg)
        self.poll()
        assert self.capture is not None
        self.capture.read()
        for name in self.agents:
            self._agent_reports(name)

    def poll(self) -> None:
        if self.trace is not None:
            self.trace.drain()
        for name, rec in self.recorders.items():
            if name in self.crashed:
                continue
            self.events.extend(rec.poll(self.t0))

    def _await_report(self, name: str, call: str, timeout: float = 2.0) -> None:
        """Block (bounded) until the host's agent has reported ``call``: a listen() must be in place before the
        next step sends a SYN to it, as in the model, where steps at the same instant run in order."""
        agent = self.agents.get(name)
        if agent is None or agent.proc.stdout is None:
            return
        deadline = time.monotonic() + timeout
        fd = agent.proc.stdout.fileno()
        while time.monotonic() < deadline:
            got = agent.read()
            self.pending.setdefault(name, []).extend(got)
            if any(r.get("call") == call for r in got):
                return
            select.select([fd], [], [], max(0.0, deadline - time.monotonic()))

    def _agent_reports(self, name: str) -> None:
        agent = self.agents.get(name)
        if agent is None:
            return
        for rep in self.pending.pop(name, []) + agent.read():
            if rep.get("ready"):
                continue
            conn = None
            if "lport" in rep:
                peer = self.recorders[name].names.get(rep["raddr"], rep["raddr"])
                conn = f"{name}:{rep['lport']}>{peer}:{rep['rport']}"
            elif rep["call"] == AppCall.LISTEN:
                conn = f"{name}:{rep['port']} (listen)"
            t = max(0.0, rep["t"] - self.t0)
            fields = {k: rep[k] for k in _APP_FIELDS if k in rep}
            self.events.append(Event(t, name, EventKind.APP, call=AppCall(rep["call"]), conn=conn, **fields))
            # CLOSED from an fd is not the connection's state: when a socket still held by the application
            # enters TIME_WAIT, the kernel moves the connection to a separate timewait sock and leaves the fd's
            # sock in TCP_CLOSE (tcp_time_wait() -> tcp_done()). sock_diag reports the timewait sock.
            if conn is not None and "kstate" in rep and kernel_state_name(int(rep["kstate"])) != "CLOSED":
                self.app_states.append((t, name, conn, kernel_state_name(int(rep["kstate"]))))

    def _rule(self, what: str) -> str:
        self.rule_no += 1
        return f"tw{self.rule_no}-{what}"

    def step(self, st: S.Step, now: float) -> None:
        t = now - self.t0
        if isinstance(st, S.Listen | S.Connect | S.Accept | S.Send | S.Shutdown | S.Close | S.Abort):
            self._socket_step(st)
        elif isinstance(st, S.DropNext | S.Partition | S.Heal):
            self._fault_step(st, t)
        elif isinstance(st, S.Crash):
            self._crash(st.host, t)
        elif isinstance(st, S.Reboot):
            self._reboot(st.host, t)
        elif isinstance(st, S.Note):
            self._note(t, st.text, text_zh=st.text_zh or None)
        else:
            raise UsageError(f"the lab cannot run step {type(st).__name__}")

    def _socket_step(self, st: Any) -> None:
        """An application call: one agent command (a listen() is waited for, see _await_report)."""
        if isinstance(st, S.Listen):
            cfg = self.cfg[st.host]
            self._cmd(
                st.host,
                {
                    "op": "listen",
                    "port": st.port,
                    "backlog": st.backlog or cfg.backlog,
                    "accept": st.accept,
                    "on_eof": st.on_eof,
                    "ipv6": self.ipv6,
                    "opts": socket_opts_for(cfg),
                },
            )
            if st.host not in self.crashed:
                self._await_report(st.host, "listen")
            return
        cmd: dict[str, Any]
        if isinstance(st, S.Connect):
            cmd = {
                "op": "connect",
                "sock": st.sock,
                "to": self.addr(st.to),
                "port": st.port,
                "sport": st.sport,
                "on_eof": st.on_eof,
                "opts": socket_opts_for(self.cfg[st.host]),
            }
        elif isinstance(st, S.Accept):
            cmd = {"op": "accept", "port": st.port, "sock": st.sock}
        elif isinstance(st, S.Send):
            cmd = {"op": "send", "sock": st.sock, "nbytes": st.nbytes}
            if st.data:
                cmd["data"] = st.data.hex()
        else:  # Shutdown, Close, Abort
            cmd = {"op": type(st).__name__.lower(), "sock": st.sock}
        self._cmd(st.host, cmd)

    def _fault_step(self, st: Any, t: float) -> None:
        """A network fault at R: nft rules added (DropNext, Partition) or removed (Heal)."""
        if isinstance(st, S.DropNext):
            self.faults.drop_next(
                self._rule("dropnext"), self.addr(st.src), self.addr(st.dst), st.flags, st.count
            )
            return
        if isinstance(st, S.Partition):
            label = self._rule("partition")
            self.partitions[(st.src, st.dst)] = label
            self.faults.partition(label, self.addr(st.src), self.addr(st.dst))
        else:
            label = self.partitions.pop((st.src, st.dst), "")
            if label:
                self.faults.delete(label)
        en, zh = st.describe()
        self._note(t, en, st.src, zh)

    def raw_send(self, host: str, packet: bytes) -> None:
        """Send a complete IP packet from ``host``'s namespace with a raw socket (IP_HDRINCL: any source address,
        as an attacker's raw-socket program would); the capture at R sees it arrive from that host."""
        v6 = packet[0] >> 4 == 6
        sock = self.raw_socks.get((host, v6))
        if sock is None:
            import socket as _socket

            fam = _socket.AF_INET6 if v6 else _socket.AF_INET
            with in_netns(self.topo.hosts[self.map[host]].ns):
                sock = _socket.socket(fam, _socket.SOCK_RAW, _socket.IPPROTO_RAW)
            self.raw_socks[(host, v6)] = sock
        import socket as _socket

        fam = _socket.AF_INET6 if v6 else _socket.AF_INET
        dst = _socket.inet_ntop(fam, packet[24:40] if v6 else packet[16:20])
        with contextlib.suppress(OSError):
            sock.sendto(packet, (dst, 0))

    def command(self, host: str, cmd: dict[str, Any]) -> None:
        """Send an agent command for a script host (hooks use it: pause_reads, resume_reads)."""
        self._cmd(host, cmd)

    def _cmd(self, host: str, cmd: dict[str, Any]) -> None:
        if host not in self.map:
            raise UsageError(f"script step names unknown host {host!r}")
        agent = self.agents.get(host)
        if agent is not None and host not in self.crashed:
            agent.send(cmd)

    def _note(self, t: float, text: str, host: str | None = None, text_zh: str | None = None) -> None:
        self.events.append(
            Event(
                t=t, host=host or self.script.hosts[0].name, kind=EventKind.NOTE, text=text, text_zh=text_zh
            )
        )

    def _crash(self, host: str, t: float) -> None:
        # Order matters: first cut the host off at R, then kill its processes. The kernel closes the killed
        # process's sockets (FIN or RST), and those must not reach the peer: a crashed host says nothing.
        self.faults.isolate(f"crash-{host}", self.addr(host))
        agent = self.agents.pop(host, None)
        if agent is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(agent.proc.stdout.fileno())  # type: ignore[union-attr]
            self.topo.kill_host_processes(self.map[host])
            agent.kill()
        self.crashed.add(host)
        self.down.setdefault(host, []).append((t, float("inf")))
        self.events.append(Event(t, host, EventKind.APP, call=AppCall.CRASH))
        # Like the model, a crashed host records nothing more: its connections vanish with it, silently.
        self.recorders[host].last = {}

    def _reboot(self, host: str, t: float) -> None:
        if host not in self.crashed:
            self._crash(host, t)
        self.topo.reboot_host(self.map[host])
        th = self.topo.hosts[self.map[host]]
        if self.fwd is not None:  # a new veth pair: a new MAC address to deliver to
            self.fwd.routes[th.addr4] = Route(th.router_if, th.mac)
            self.fwd.routes[th.addr6] = Route(th.router_if, th.mac)
        self.faults.unisolate(f"crash-{host}")
        self.down[host][-1] = (self.down[host][-1][0], time.monotonic() - self.t0)
        self.crashed.discard(host)
        self.recorders[host].last = {}
        self._start_host(host)
        self.events.append(Event(time.monotonic() - self.t0, host, EventKind.APP, call=AppCall.REBOOT))

    # --- the record ----------------------------------------------------------------------------------------------
    def _merge_states(self, events: list[Event]) -> list[Event]:
        """Merge the two state sources — sock_diag polls (every state that lasts a poll interval) and the agents'
        tcp_info readings at each application call (states that last less) — into one chain of transitions per
        connection, in time order."""
        obs: dict[tuple[str, str | None], list[tuple[float, str, str | None]]] = defaultdict(list)
        rest: list[Event] = []
        for e in events:
            if e.kind == "state" and e.to_state:
                obs[(e.host, e.conn)].append((e.t, e.to_state, e.from_state))
            else:
                rest.append(e)
        for t, host, conn, state in self.app_states:
            key = (host, conn)
            if key in obs:  # only connections sock_diag saw too (it knows where they came from)
                obs[key].append((t, state, None))
        for (host, label), items in obs.items():
            items.sort(key=lambda x: x[0])
            prev: str = items[0][2] or "CLOSED"
            seen_by_recorder = False
            for t, state, hint in items:
                if hint == "CLOSED" and prev != "CLOSED" and seen_by_recorder:
                    # The recorder saw the tuple appear anew after it had seen it before (a listener re-opened
                    # after its host's reboot; the crash forgot the old one silently, as the model's crash does):
                    # a new life starts. (A first sighting after the agent's own reading is the same life.)
                    prev = hint
                seen_by_recorder = seen_by_recorder or hint is not None
                if state != prev:
                    rest.append(
                        Event(
                            t=t,
                            host=host,
                            kind=EventKind.STATE,
                            from_state=TcpState(prev),
                            to_state=TcpState(state),
                            conn=label,
                        )
                    )
                    prev = state
        return rest

    def build_run(
        self, scenario: str, title: str, params: dict[str, Any], seed: int | None, end: float
    ) -> Run:
        assert self.capture is not None
        by_if = {h.router_if: self.rev[h.name] for h in self.topo.hosts.values()}
        sent: list[tuple[Frame, Any]] = []
        delivered: dict[tuple[object, ...], int] = defaultdict(int)
        for f in self.capture.frames:
            seg = parse_frame(f.data)
            if seg is None:
                continue
            host = by_if.get(f.ifname)
            if host is None:
                continue
            t = f.t - self.t0
            src_host = self.recorders[host].names.get(seg.src, host)
            dst_host = self.recorders[host].names.get(seg.dst, host)
            if f.outgoing:
                delivered[segment_key(seg)] += 1
                self.events.append(
                    Event(
                        t=t,
                        host=dst_host,
                        kind=EventKind.RECV,
                        segment=seg,
                        conn=f"{dst_host}:{seg.dport}>{src_host}:{seg.sport}",
                    )
                )
            elif any(lo <= t < hi for lo, hi in self.down.get(src_host, ())):
                # The crashed host's kernel still closes its sockets (FIN/RST) and retransmits; R drops all of
                # it. The model's crashed host sends nothing, so this is recorded as a drop, never as a send.
                self.events.append(
                    Event(
                        t=t,
                        host=src_host,
                        kind=EventKind.DROP,
                        segment=seg,
                        reason=DropReason.HOST_DOWN,
                        text="sent by the crashed host's kernel, dropped at R",
                    )
                )
            else:
                sent.append((f, seg))
                self.events.append(
                    Event(
                        t=t,
                        host=src_host,
                        kind=EventKind.SEND,
                        segment=seg,
                        conn=f"{src_host}:{seg.sport}>{dst_host}:{seg.dport}",
                    )
                )
        horizon = end - self.delay - 0.05  # frames sent later may still be in the delay line: not drops
        for f, seg in sent:
            key = segment_key(seg)
            if delivered[key] > 0:
                delivered[key] -= 1
                continue
            t = f.t - self.t0
            if t < horizon:
                host = by_if[f.ifname]
                self.events.append(
                    Event(t=t, host=host, kind=EventKind.DROP, segment=seg, reason=DropReason.NFTABLES)
                )
        if self.trace is not None:
            self.events = merge_traced(self.events, self.trace.finish(), self.recorders, self.t0)
        self.events = syn_queue_at_syn(self._merge_states(self.events))
        order = {"app": 0, "send": 1, "drop": 2, "recv": 3, "state": 4, "note": 5, "timer": 6}
        self.events.sort(key=lambda e: (e.t, order.get(e.kind, 9)))
        for spec in self.script.hosts:
            if self.cfg[spec.name].time_wait != LINUX.time_wait:
                self.events.insert(
                    0,
                    Event(
                        t=0.0,
                        host=spec.name,
                        kind=EventKind.NOTE,
                        text=f"time_wait={self.cfg[spec.name].time_wait:g} has no sysctl: "
                        "Linux keeps TIME_WAIT for 60 s (TCP_TIMEWAIT_LEN)",
                        text_zh=f"time_wait={self.cfg[spec.name].time_wait:g} 没有对应的 sysctl："
                        "Linux 的 TIME_WAIT 固定为 60 秒 (TCP_TIMEWAIT_LEN)",
                    ),
                )
        hosts = [Host(h.name, self.addr(h.name), h.role) for h in self.script.hosts]
        counters = {}
        with contextlib.suppress(Exception):
            counters = self.faults.counters()
        values = {
            "lab_run_id": self.topo.run_id,
            "duration": end,
            "delay": self.delay,
            "polls": sum(r.polls for r in self.recorders.values()),
            "packets_forwarded": self.fwd.forwarded if self.fwd else 0,
            "delay_late_max_ms": round(self.fwd.late_max * 1000, 2) if self.fwd else 0.0,
            "delay_late_mean_ms": round(self.fwd.late_sum * 1000 / max(1, self.fwd.forwarded), 2)
            if self.fwd
            else 0.0,
            "nft_drops": counters,
        }
        if self.missing_sysctls:
            values["kernel_lacks"] = sorted(self.missing_sysctls)
        return Run(
            scenario=scenario,
            title=title,
            world="lab",
            seed=seed,
            params=params,
            hosts=hosts,
            events=self.events,
            summary={"values": values},
        )
