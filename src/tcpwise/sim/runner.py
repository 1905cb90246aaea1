"""Run a :class:`tcpwise.script.Script` in the simulator and return the recorded :class:`Run`.

The lab executes the very same steps on the real kernel; this is the model world's executor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

import tcpwise.script as sc
from tcpwise.endpoint.config import LINUX, EndpointConfig
from tcpwise.endpoint.stack import ConnectError
from tcpwise.endpoint.tcb import LocalProtocolError
from tcpwise.events import Run
from tcpwise.sim.core import SimHost, Simulator
from tcpwise.sim.network import DropRule, Impairments
from tcpwise.vocab import AppCall, AppWhy

__all__ = ["run_script", "build_sim", "config_for", "payload_bytes"]

_CFG_FIELDS = {f.name for f in fields(EndpointConfig)}


def config_for(overrides: dict[str, Any], base: EndpointConfig = LINUX) -> EndpointConfig:
    """EndpointConfig from per-host overrides; unknown keys are ignored here (scenario params validate)."""
    return base.with_(**{k: v for k, v in overrides.items() if k in _CFG_FIELDS})


def payload_bytes(n: int, offset: int = 0) -> bytes:
    """Deterministic printable payload (so captures and diagrams show recognisable bytes)."""
    alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789"
    start = offset % len(alphabet)
    return (alphabet * (n // len(alphabet) + 2))[start : start + n]


def build_sim(
    script: sc.Script,
    seed: int,
    *,
    record: bool = True,
    record_payload: bool = False,
    base: EndpointConfig = LINUX,
) -> Simulator:
    sim = Simulator(seed, record=record, record_payload=record_payload)
    link = script.link
    sim.default_imp = Impairments(link.delay, link.jitter, link.loss, link.duplicate, link.reorder)
    for hs in script.hosts:
        port_range = hs.config.get("port_range", (32768, 60999))
        sim.add_host(hs.name, hs.addr, config_for(hs.config, base), hs.role, tuple(port_range))
    for step in script.steps:
        sim.at(step.t, _do_step, sim, step)
    return sim


def run_script(
    script: sc.Script,
    seed: int = 1,
    *,
    scenario: str = "",
    params: dict[str, Any] | None = None,
    record: bool = True,
    record_payload: bool = False,
    base: EndpointConfig = LINUX,
    setup: Callable[[Simulator], None] | None = None,
) -> tuple[Simulator, Run]:
    sim = build_sim(script, seed, record=record, record_payload=record_payload, base=base)
    if setup is not None:
        setup(sim)
    sim.run(script.duration)
    run = Run(
        scenario=scenario,
        seed=seed,
        params=dict(params or {}),
        hosts=sim.host_models(),
        events=sim.events,
        world="sim",
    )
    return sim, run


# ------------------------------------------------------------------------------------------------------------
def _do_step(sim: Simulator, step: sc.Step) -> None:
    handler = _HANDLERS[type(step)]
    handler(sim, step)


def _host(sim: Simulator, name: str) -> SimHost:
    return sim.hosts[name]


def _listen(sim: Simulator, st: sc.Listen) -> None:
    h = _host(sim, st.host)
    if h.down:
        return
    lst = h.stack.listen(st.port, st.backlog, sim.now, auto_accept=st.accept)
    h.listen_policy[st.port] = {"accept": st.accept, "on_eof": st.on_eof, "label": "s"}
    h.app(AppCall.LISTEN, port=st.port, backlog=lst.backlog)
    h.after_call()  # logs the listener's CLOSED -> LISTEN


def _connect(sim: Simulator, st: sc.Connect) -> None:
    h = _host(sim, st.host)
    if h.down:
        return
    peer = _host(sim, st.to)
    try:
        ep = h.stack.connect(peer.addr, st.port, sim.now, st.sport)
    except ConnectError as exc:
        h.errors[st.sock] = exc.errno
        h.app(AppCall.CONNECT, errno=exc.errno)
        return
    h.bind_label(ep, st.sock)
    h.policy[st.sock] = {"on_eof": st.on_eof, "auto_read": True}
    h.app(AppCall.CONNECT, ep)
    h.after_call()


def _accept(sim: Simulator, st: sc.Accept) -> None:
    h = _host(sim, st.host)
    ep = h.stack.accept(st.port)
    if ep is None:
        h.app(AppCall.ACCEPT, errno="EAGAIN", why=AppWhy.NOTHING_QUEUED)
        return
    h.bind_label(ep, st.sock)
    h.policy[st.sock] = {"on_eof": "", "auto_read": True}
    h.app(AppCall.ACCEPT, ep)
    h.after_call()


def _sock_call(sim: Simulator, host: str, sock: str) -> tuple[SimHost, Any]:
    h = _host(sim, host)
    return h, h.socks.get(sock)


def _send(sim: Simulator, st: sc.Send) -> None:
    h, ep = _sock_call(sim, st.host, st.sock)
    if ep is None:
        return
    data = st.data if st.data is not None else payload_bytes(st.nbytes)
    try:
        n = ep.send(data, sim.now)
        h.app(AppCall.SEND, ep, nbytes=n)
    except LocalProtocolError:
        h.app(AppCall.SEND, ep, errno="EPIPE" if ep.error is None else ep.error)
    h.after_call()


def _shutdown(sim: Simulator, st: sc.Shutdown) -> None:
    h, ep = _sock_call(sim, st.host, st.sock)
    if ep is None:
        return
    ep.shutdown(sim.now)
    h.app(AppCall.SHUTDOWN, ep)
    h.after_call()


def _close(sim: Simulator, st: sc.Close) -> None:
    h, ep = _sock_call(sim, st.host, st.sock)
    if ep is None:
        return
    h.app(AppCall.CLOSE, ep)
    try:
        ep.close(sim.now)
    except LocalProtocolError:
        pass  # closing a socket the kernel already closed: close(2) just frees the fd
    h.after_call()


def _abort(sim: Simulator, st: sc.Abort) -> None:
    h, ep = _sock_call(sim, st.host, st.sock)
    if ep is None:
        return
    h.app(AppCall.ABORT, ep)
    ep.abort(sim.now)
    h.after_call()


def _drop_next(sim: Simulator, st: sc.DropNext) -> None:
    sim.channel(st.src, st.dst).rules.append(
        DropRule(st.flags, st.count, f"next {st.count} {st.flags or 'any'} {st.src}->{st.dst}")
    )


def _partition(sim: Simulator, st: sc.Partition) -> None:
    sim.channel(st.src, st.dst).partitioned = True
    sim.log_note(st.src, *st.describe())


def _heal(sim: Simulator, st: sc.Heal) -> None:
    sim.channel(st.src, st.dst).partitioned = False
    sim.log_note(st.src, *st.describe())


def _crash(sim: Simulator, st: sc.Crash) -> None:
    h = _host(sim, st.host)
    h.crash()
    h.app(AppCall.CRASH, text="all TCP state lost, nothing sent")


def _reboot(sim: Simulator, st: sc.Reboot) -> None:
    h = _host(sim, st.host)
    h.reboot()
    h.app(AppCall.REBOOT, text="an empty TCP stack")


def _note(sim: Simulator, st: sc.Note) -> None:
    sim.log_note("", st.text, st.text_zh or None)


_HANDLERS: dict[type, Callable[[Simulator, Any], None]] = {
    sc.Listen: _listen,
    sc.Connect: _connect,
    sc.Accept: _accept,
    sc.Send: _send,
    sc.Shutdown: _shutdown,
    sc.Close: _close,
    sc.Abort: _abort,
    sc.DropNext: _drop_next,
    sc.Partition: _partition,
    sc.Heal: _heal,
    sc.Crash: _crash,
    sc.Reboot: _reboot,
    sc.Note: _note,
}
