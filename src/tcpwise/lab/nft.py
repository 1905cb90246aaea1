"""Faults at the router R with nftables: one ``inet tcpwise_<run>`` table, one ``forward`` chain.

Theory of operation
-------------------
Every segment between A and B is forwarded by R's kernel, so a rule in R's ``forward`` hook sees it once, in
the direction it travels, before the router's user-space delay line (:mod:`tcpwise.lab.forward`). Rules are
added and deleted while the run goes on (``nft --echo --handle`` gives the handle to delete by):

* direction: ``ip saddr A ip daddr B`` (``ip6`` for the IPv6 variant);
* flags with *exactly equal* semantics: ``tcp flags == ack`` matches a pure ACK and not a FIN+ACK
  (nft(8): a bare ``tcp flags ack`` would mean "ack is set");
* "only the next N": ``limit rate 1/day burst N packets`` — the token bucket starts with N tokens and earns the
  next one a day later, so the rule matches (drops) exactly the next N segments that get that far in the rule
  (nft_limit.c: packet-mode buckets start full with ``burst`` tokens). nft quotas count bytes, not packets;
* probability: ``numgen random mod 1000000 < p*1e6`` (not seeded: the kernel's PRNG);
* partition / heal: a direction rule added at Partition and deleted at Heal;
* crash: both directions of a host dropped until it reboots.

The whole table lives in R's namespace; deleting the table (or the namespace) removes every fault.
"""

from __future__ import annotations

import json
import re

from tcpwise.lab.netns import sh

__all__ = ["Faults", "flags_expr"]

# Canonical flag letters (tcpwise.vocab.FLAG_ORDER) -> nft tcp flag keywords (nft(8), TCP HEADER EXPRESSION).
_NFT_FLAG = {"S": "syn", "F": "fin", "R": "rst", "P": "psh", "A": "ack", "U": "urg", "E": "ecn", "C": "cwr"}


def flags_expr(flags: str) -> str:
    """``"A"`` -> ``tcp flags == ack``; ``"FA"`` -> ``tcp flags == fin | ack`` (exact equality)."""
    try:
        words = [_NFT_FLAG[c] for c in flags]
    except KeyError:
        raise ValueError(f"unknown TCP flag letters {flags!r} (valid: SFRPAUEC)") from None
    if not words:
        return "tcp flags == 0x0"
    return "tcp flags == " + " | ".join(words)


class Faults:
    """The fault table of one run, in namespace ``ns``."""

    def __init__(self, ns: str, run_id: str) -> None:
        self.ns = ns
        self.table = f"tcpwise_{run_id}"
        self.rules: dict[str, int] = {}  # our label -> nft handle
        self.created = False

    def nft(self, script: str) -> str:
        return sh("ip", "netns", "exec", self.ns, "nft", "-f", "-", input=script)

    def create(self) -> None:
        self.nft(
            f"table inet {self.table} {{\n"
            "  chain forward { type filter hook forward priority 0; policy accept; }\n"
            "}\n"
        )
        self.created = True

    def destroy(self) -> None:
        if self.created:
            sh("ip", "netns", "exec", self.ns, "nft", "delete", "table", "inet", self.table, check=False)
            self.created = False

    def add(self, label: str, expr: str) -> int:
        """Append ``expr`` (ending in a verdict) to the forward chain; remember its handle under ``label``."""
        out = sh(
            "ip",
            "netns",
            "exec",
            self.ns,
            "nft",
            "--echo",
            "--handle",
            "add",
            "rule",
            "inet",
            self.table,
            "forward",
            *expr.split(),
            "comment",
            f'"{label}"',
        )
        m = re.search(r"# handle (\d+)", out)
        if not m:
            raise RuntimeError(f"nft did not report a handle for rule {expr!r}")
        handle = int(m.group(1))
        self.rules[label] = handle
        return handle

    def delete(self, label: str) -> None:
        handle = self.rules.pop(label, None)
        if handle is not None:
            sh(
                "ip",
                "netns",
                "exec",
                self.ns,
                "nft",
                "delete",
                "rule",
                "inet",
                self.table,
                "forward",
                "handle",
                str(handle),
                check=False,
            )

    @staticmethod
    def _dir(src: str, dst: str) -> str:
        fam = "ip6" if ":" in src else "ip"
        return f"{fam} saddr {src} {fam} daddr {dst}"

    def drop_next(self, label: str, src: str, dst: str, flags: str | None, count: int) -> int:
        match = self._dir(src, dst) + " meta l4proto tcp"
        if flags is not None:
            match += " " + flags_expr(flags)
        return self.add(label, f"{match} limit rate 1/day burst {max(1, count)} packets counter drop")

    def partition(self, label: str, src: str, dst: str) -> int:
        return self.add(label, f"{self._dir(src, dst)} counter drop")

    def isolate(self, label: str, addr: str) -> None:
        fam = "ip6" if ":" in addr else "ip"
        self.add(label + "-out", f"{fam} saddr {addr} counter drop")
        self.add(label + "-in", f"{fam} daddr {addr} counter drop")

    def unisolate(self, label: str) -> None:
        self.delete(label + "-out")
        self.delete(label + "-in")

    def loss(self, label: str, src: str, dst: str, probability: float) -> int:
        n = int(round(probability * 1_000_000))
        if n >= 1_000_000:  # certain loss: numgen's values stop at 999999, so no comparison is needed
            return self.add(label, f"{self._dir(src, dst)} counter drop")
        return self.add(label, f"{self._dir(src, dst)} numgen random mod 1000000 < {n} counter drop")

    def middlebox_idle_timeout(self, seconds: int) -> None:
        """Make R a stateful firewall that forgets a TCP flow after ``seconds`` idle, then drops its segments
        silently. R's conntrack gets an ESTABLISHED timeout of ``seconds``
        (``net.netfilter.nf_conntrack_tcp_timeout_established``, per namespace), and a segment that is not a SYN
        but creates a *new* conntrack entry — its flow was forgotten — is dropped (``ct state new`` without SYN:
        the classic firewall rule). Both ends stay ESTABLISHED and hear nothing: a half-open connection made by
        the network. (An nft ``ct timeout`` object would be the per-flow way; this kernel ignores it.)"""
        # The rule first: it makes R's namespace track connections, which creates the conntrack sysctls.
        self.add("middlebox-idle", "meta l4proto tcp ct state new tcp flags & syn != syn counter drop")
        sh(
            "ip",
            "netns",
            "exec",
            self.ns,
            "sysctl",
            "-q",
            "-w",
            f"net.netfilter.nf_conntrack_tcp_timeout_established={int(seconds)}",
        )

    def counters(self) -> dict[str, int]:
        """label -> packets dropped so far (from the rules' counters)."""
        out = sh(
            "ip",
            "netns",
            "exec",
            self.ns,
            "nft",
            "-j",
            "list",
            "chain",
            "inet",
            self.table,
            "forward",
            check=False,
        )
        result: dict[str, int] = {}
        try:
            items = json.loads(out)["nftables"]
        except (ValueError, KeyError):
            return result
        for it in items:
            rule = it.get("rule")
            if not rule:
                continue
            label = rule.get("comment", "")
            for e in rule.get("expr", []):
                if "counter" in e:
                    result[label] = int(e["counter"]["packets"])
        return result
