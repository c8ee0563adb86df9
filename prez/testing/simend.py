"""The end of a `Simulation` run: heal every fault, then liveness (a
leader is elected, a new entry commits and is applied everywhere, each
within a bound), a read served at every node, and the linearizability check
of the whole client history. Functions bound into Simulation's class body
as methods: they share all of its state, and a module of their own keeps
sim.py to one job, running the chaos."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prez.raft.core import NotLeader, Role
from prez.testing.invariants import InvariantViolation
from prez.testing.linearizability import check_history
from prez.testing.simnodes import SimRead

if TYPE_CHECKING:
    from prez.testing.sim import Simulation


def await_final_reads(self: Simulation) -> None:
    """After healing, a read at every node must be served (a failed one
    is retried, as a client would) within a bound."""
    bound = 20 * self.params.election_ticks
    start = self.tick_count
    contexts: dict[str, bytes] = {}
    while True:
        done = True
        for member in self.members.values():
            context = contexts.get(member.name)
            if context is not None and context in self.served_contexts:
                continue
            done = False
            if context is not None and (
                context in member.reads
                or any(r.context == context for r in member.waiting_reads)
            ):
                continue  # still on its way
            node = member.node
            assert node is not None
            self.client_ops += 1
            context = b"final%d" % self.client_ops
            contexts[member.name] = context
            member.reads[context] = SimRead(b"k0", self.now, self.tick_count, context)
            node.read_index(context)
            self._after_input(member)
        if done:
            return
        if self.tick_count - start > bound:
            self._liveness_failure(f"reads not served within {bound} ticks")
        self._run_tick()


def check_client_history(self: Simulation) -> None:
    for member in self.members.values():
        for write in member.writes.values():
            self._write_outcome_unknown(write)
        member.writes = {}
    result = check_history(self.operations, timeout=20.0)
    if result.ok is not True:
        raise InvariantViolation("linearizable history", result.describe())


def heal(self: Simulation) -> int:
    self.chaos = False
    self.params.drop_rate = 0.0
    self.params.dup_rate = 0.0
    self.params.reorder_rate = 0.0
    self.params.snapshot_fail_rate = 0.0
    self._set_groups({name: 0 for name in self.names}, "heal all")
    for member in self.members.values():
        if member.node is None:
            self._start(member)
    return self.tick_count


def await_liveness(self: Simulation, healed_at: int) -> tuple[int, int, int]:
    """After healing: a leader within `election_bound` ticks, a new entry
    committed within `commit_bound`, and applied by every node within
    `catch_up_bound` more (a node that was down long may have a long log
    to fetch). Returns the three durations."""
    params = self.params
    markers: set[bytes] = set()
    proposed_in: set[tuple[str, int]] = set()
    history = self.checker.history
    scanned = len(history)
    elected_at = 0
    committed_marker = 0
    committed_at = 0
    while True:
        if not elected_at and self.tick_count - healed_at > params.election_bound:
            self._liveness_failure(f"no leader within {params.election_bound} ticks")
        if not committed_marker and self.tick_count - healed_at > params.commit_bound:
            self._liveness_failure(
                f"no new entry committed within {params.commit_bound} ticks"
            )
        if committed_marker and self.tick_count - committed_at > params.catch_up_bound:
            self._liveness_failure(
                f"committed entry {committed_marker} not applied everywhere "
                f"within {params.catch_up_bound} ticks"
            )
        self._run_tick()
        if not committed_marker:
            for member in self.members.values():
                node = member.node
                assert node is not None
                key = (member.name, node.term)
                if node.role is Role.LEADER and key not in proposed_in:
                    elected_at = elected_at or self.tick_count
                    marker = f"live:{member.name}:{node.term}".encode()
                    try:
                        node.propose(marker)
                    except NotLeader:
                        continue  # handing over: the next leader will do
                    # A fresh marker per leadership: one proposed to a
                    # leader that then lost office need not commit.
                    proposed_in.add(key)
                    markers.add(marker)
                    self._record("propose", f"marker {marker!r}")
                    self._after_input(member)
            while not committed_marker and scanned < len(history):
                if history[scanned].data in markers:
                    committed_marker = scanned + 1
                    committed_at = self.tick_count
                scanned += 1
        # Removed nodes (and learners whose addition was lost) are no
        # longer fed by the leader: only the members must catch up.
        if committed_marker and all(
            self.checker.watch[name].applied >= committed_marker
            for name in self._final_membership().members
        ):
            return (
                elected_at - healed_at,
                committed_at - healed_at,
                self.tick_count - committed_at,
            )


def liveness_failure(self: Simulation, what: str) -> None:
    states = ", ".join(
        f"{m.name}:{m.node.role}:t{m.node.term}:c{m.node.commit_index}"
        f"/{m.node.last_index}:a{self.checker.watch[m.name].applied}"
        for m in self.members.values()
        if m.node is not None
    )
    raise InvariantViolation("liveness", f"{what} of healing ({states})")
