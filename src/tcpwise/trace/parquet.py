"""``--format parquet``: the conn.log columns plus tcpwise's own, for DuckDB / Spark / pandas.

Theory of operation: rows are buffered column by column and written as one Parquet row group per
:data:`ROW_GROUP` connections through ``pyarrow.parquet.ParquetWriter``, so memory stays bounded whatever the
capture size. The file is written to the temporary file of :func:`tcpwise.outfile.atomic_output` by the caller,
so a failed run leaves no half Parquet file. pyarrow is an optional extra (``pip install 'tcpwise[parquet]'``);
without it the format is a one-line error.

Columns: Zeek's conn.log fields with Zeek's names and meanings (``ts`` as a UTC timestamp in microseconds,
``duration`` in seconds, unset values as nulls, ``local_orig``/``local_resp``/``service`` omitted because
tcpwise never sets them), then ``n`` (the table's ``#``), ``closer`` (who sent the first FIN: ``orig``/``resp``),
``reset_origin`` (who sent the first RST), ``reset_state`` (the RFC 9293 state the RST came from),
``time_wait`` (who ends in TIME_WAIT: ``orig``, ``resp``, ``both`` or null), ``handshake_rtt`` (from the answered
SYN, the last before the SYN+ACK, to the originator's ACK of the SYN+ACK, seconds; the JSON's ``handshake.rtt``),
``orig_window_scaled_max`` / ``resp_window_scaled_max`` (largest advertised window, RFC 7323 scaling applied) and
``story``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from tcpwise.errors import UsageError
from tcpwise.trace.output import story
from tcpwise.trace.tracker import Conn
from tcpwise.trace.zeek import conn_state, uid

__all__ = ["ParquetSink", "COLUMNS", "ROW_GROUP"]

ROW_GROUP = 16384

# (name, arrow type name) in file order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("ts", "timestamp"),
    ("uid", "string"),
    ("id.orig_h", "string"),
    ("id.orig_p", "uint16"),
    ("id.resp_h", "string"),
    ("id.resp_p", "uint16"),
    ("proto", "string"),
    ("duration", "float64"),
    ("orig_bytes", "uint64"),
    ("resp_bytes", "uint64"),
    ("conn_state", "string"),
    ("missed_bytes", "uint64"),
    ("history", "string"),
    ("orig_pkts", "uint64"),
    ("orig_ip_bytes", "uint64"),
    ("resp_pkts", "uint64"),
    ("resp_ip_bytes", "uint64"),
    ("n", "uint64"),
    ("closer", "string"),
    ("reset_origin", "string"),
    ("reset_state", "string"),
    ("time_wait", "string"),
    ("handshake_rtt", "float64"),
    ("orig_window_scaled_max", "uint64"),
    ("resp_window_scaled_max", "uint64"),
    ("story", "string"),
)

_WHO = ("orig", "resp")


def require_pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError(
            "--format parquet needs pyarrow, an optional extra: pip install 'tcpwise[parquet]'"
        ) from None
    return pa, pq


class ParquetSink:
    """Call with each finished :class:`Conn`; :meth:`close` writes the last row group and the footer."""

    def __init__(self, out: IO[bytes], name_of: Callable[[int], str]) -> None:
        pa, pq = require_pyarrow()
        self.pa = pa
        self.name_of = name_of
        self.salt = 0
        types = {
            "timestamp": pa.timestamp("us", tz="UTC"),
            "string": pa.string(),
            "uint16": pa.uint16(),
            "uint64": pa.uint64(),
            "float64": pa.float64(),
        }
        self.schema = pa.schema([(n, types[t]) for n, t in COLUMNS])
        self.writer = pq.ParquetWriter(out, self.schema, compression="zstd")
        self.cols: dict[str, list[Any]] = {n: [] for n, _ in COLUMNS}
        self.rows = 0

    def __call__(self, c: Conn) -> None:
        if not self.salt:  # the same uids as the JSON and Zeek outputs
            self.salt = int(c.ts * 1e6) or 1
        name = self.name_of
        dur = c.last - c.ts
        has = dur > 0
        tw = [_WHO[i] for i in (0, 1) if c.sides[i].state == "TIME_WAIT"]
        rtt = None
        if c.syn_last_t is not None and c.synack_t is not None and c.ack_t is not None:
            rtt = c.ack_t - c.syn_last_t  # from the SYN that was answered: retries are not round trips
        rs = c.sides[c.rst_by].rst_state if c.rst_by is not None else None
        vals = (
            int(round(c.ts * 1e6)),
            uid(c, self.salt),
            name(c.orig_ep >> 16),
            c.orig_ep & 0xFFFF,
            name(c.resp_ep >> 16),
            c.resp_ep & 0xFFFF,
            "tcp",
            dur if has else None,
            c.o.size if has else None,
            c.r.size if has else None,
            conn_state(c),
            c.o.missed + c.r.missed,
            c.history,
            c.o.pkts,
            c.o.ipbytes,
            c.r.pkts,
            c.r.ipbytes,
            c.n,
            _WHO[c.first_fin] if c.first_fin is not None else None,
            _WHO[c.rst_by] if c.rst_by is not None else None,
            rs,
            "both" if len(tw) == 2 else (tw[0] if tw else None),
            rtt,
            c.o.window_max_scaled if c.o.pkts else None,
            c.r.window_max_scaled if c.r.pkts else None,
            story(c),
        )
        for (col, _t), v in zip(COLUMNS, vals, strict=True):
            self.cols[col].append(v)
        self.rows += 1
        if self.rows % ROW_GROUP == 0:
            self._flush()

    def _flush(self) -> None:
        if not self.cols["uid"]:
            return
        table = self.pa.Table.from_pydict(self.cols, schema=self.schema)
        self.writer.write_table(table)
        for v in self.cols.values():
            v.clear()

    def close(self) -> None:
        self._flush()
        self.writer.close()

    def abort(self) -> None:
        """The run failed: release the writer without writing (the caller discards the file)."""
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - the output is being thrown away; nothing to report
            pass
