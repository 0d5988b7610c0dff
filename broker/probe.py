"""The broker's public hook for benchmarks and monitoring: :class:`BrokerProbe` (``Broker.probe``).

Light on purpose (no zmq, no SQLAlchemy): a benchmark's client processes import it with the benchmark's module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from queuehall.broker.model import Event


class BrokerProbe:
    """What a broker reports of its own work, for benchmarks and monitoring (``Broker.probe``; none by default).

    A subclass overrides what it wants; each method is called on the broker's thread, so it must be quick (a
    benchmark counts and sums, and hands anything slow to a thread of its own). Times are ``time.monotonic()``
    seconds. One batch of requests is: :meth:`batch_started`, a :meth:`request_handled` per request, a
    :meth:`group_committed` per transaction (a snapshot request closes a group), an :meth:`events_published` after
    each commit's replies, :meth:`batch_done`. Snapshots: :meth:`snapshot_built` when the state is built (at most
    once per state and second), :meth:`snapshot_answered` for every snapshot request answered.
    """

    def batch_started(self, at: float) -> None:
        """A batch of the requests that were waiting is about to be handled."""

    def batch_done(self, at: float) -> None:
        """The batch's replies have left and its events are published."""

    def request_handled(self, seconds: float) -> None:
        """One request was carried out (decoded, authorised, executed) in ``seconds``."""

    def group_committed(self, seconds: float, commands: int) -> None:
        """A group of ``commands`` state-changing commands was made durable in one transaction (0: nothing to
        write), in ``seconds``."""

    def events_published(self, seconds: float, events: list[Event]) -> None:
        """``events`` (the engine's, in order; empty: nothing to publish) were published in ``seconds``."""

    def snapshot_built(self, started: float, seconds: float) -> None:
        """The whole state was built for snapshots, from ``started`` on, in ``seconds``."""

    def snapshot_answered(self) -> None:
        """A snapshot request is answered (its reply leaves with its batch's)."""
