"""Log replication (§5.3), both sides, and snapshots (§7): the hot path.

The leader's side: the per-follower sends (probe, pipelined replicate,
SNAPSHOT), the answers that move each follower's `Progress`, heartbeats
(numbered rounds that also confirm reads, see prez.raft.read_only),
CheckQuorum and the commit rule (§5.4.2, the majority from
prez.raft.quorum). The follower's side: AppendEntries, heartbeats and
installing a received snapshot.

Snapshots and compaction (etcd style: the core decides, the driver moves
the bytes):

- Compaction: once the driver has durably written a state machine snapshot
  covering the entries up to `index` (at most the applied index), it calls
  `node.compact(index)`; the node drops those entries and from then on
  names (index, term at index) as its snapshot point. The driver may then
  drop the WAL segments the snapshot covers. On restart it passes the
  newest durable snapshot's point and the durable log to the constructor,
  with `applied` = that snapshot's index (see RaftNode for what it skips).
- Leader: a follower that needs an entry at or below the snapshot point gets
  ONE message of type SNAPSHOT in `rd.messages` (index/log_term = the
  snapshot point, term = the leader's). The driver does not send it as a
  message: it streams its newest snapshot file (covering at least
  msg.index) to that follower in chunks, and MUST end every such transfer
  with `node.report_snapshot(peer, ok)`: True once the follower holds the
  whole verified file, False when the transfer broke, timed out, could not
  start or the follower refused the file (the leader then waits
  `snapshot_retry_ticks` and probes again, sending a new SNAPSHOT if still
  needed). Meanwhile appends to that follower pause; heartbeats go on. The
  follower's answer (an APPEND_RESP) resumes replication after the snapshot,
  whether or not the report came first.
- Follower: when the driver holds a complete, verified file, it steps
  `Message(SNAPSHOT, term=<the leader's SNAPSHOT message term>,
  src=<leader>, dst=<self>, index=<file's last index>, log_term=<its
  term>)` into the node (see below for when to discard the file). A stale
  term gets the usual stale-leader answer; a snapshot at or below the
  commit index is answered with the commit index and changes nothing.
  Otherwise the node installs it: if its log holds the entry (index,
  log_term) it keeps the entries after it, else it discards its whole log;
  commit becomes index. The next Ready then carries `rd.snapshot =
  SnapshotMeta(index, term)` and, in the same Ready:
  * `rd.entries` holds EVERY entry the node keeps after the snapshot (the
    retained suffix is handed out again) and nothing at or below
    snapshot.index. The driver therefore makes the received file the
    newest durable snapshot (rename it into place) and resets the WAL to an
    empty log starting at snapshot.index + 1 (dropping every old entry,
    kept or not) before it writes rd.entries onto it (`ReadyLoop.begin`
    calls `LogStore.install_snapshot_base`).
  * `rd.committed_entries` never include an entry at or below
    snapshot.index; the state machine is replaced by the snapshot before
    they are applied.
  * The answer (APPEND_RESP, index = snapshot.index) is in
    `rd.persisted_messages`: it leaves only once the reset is durable.
  A Ready handed out before the snapshot was installed may still be in
  flight: finish it by the contract (its committed entries all precede the
  snapshot), then take the next one. Keep every received file until the
  Ready carrying its point (or a later one) was handled: a second transfer
  may be installed meanwhile. After the step, `node.snapshot` equal to the
  file's point says the node installed it; otherwise discard the file.
- Never step a SNAPSHOT message as it comes off the network (nor pass the
  leader's on as a plain message): to the core it means "the whole file is
  here and verified", and stepping one without the file would skip the
  entries it covers in the state machine.

The functions here are RaftNode's methods, bound in its class body
(prez.raft.core says why). `handle_append` (follower), `send_append`,
`handle_append_response` and `maybe_commit` (leader) are the hot path.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING

from prez.raft.confchange import config_index, parse_config_entries
from prez.raft.progress import Progress, ProgressState
from prez.raft.quorum import quorum_index
from prez.raft.types import Membership, Message, MessageType, SnapshotMeta

if TYPE_CHECKING:
    from prez.raft.core import RaftNode

APPEND = MessageType.APPEND
APPEND_RESP = MessageType.APPEND_RESP
HEARTBEAT = MessageType.HEARTBEAT
HEARTBEAT_RESP = MessageType.HEARTBEAT_RESP
SNAPSHOT = MessageType.SNAPSHOT


def handle_append(self: RaftNode, msg: Message) -> None:
    entries = msg.entries
    prev_index = msg.index
    if entries and (
        entries[0].index != prev_index + 1
        or entries[-1].index != prev_index + len(entries)
        or entries[-1].term > msg.term
        or entries[0].term < msg.log_term
    ):
        return  # garbage: not a contiguous run following prev
    if prev_index < self._commit:
        # Everything up to commit is settled; tell the leader so it can
        # skip ahead (a delayed or duplicated old append).
        self._persisted_msgs.append(
            Message(APPEND_RESP, self._term, self._name, msg.src, index=self._commit)
        )
        return
    log = self.log
    if log.term_at(prev_index) == msg.log_term:
        last_new = prev_index + len(entries)
        if entries:
            conflict = log.find_conflict(entries)
            if conflict:
                if conflict <= self._commit:
                    # A consecutive run after prev (>= commit) cannot get
                    # here; one with a stray index in the middle can. No
                    # leader sent it: drop it rather than stop the node.
                    return
                appended = entries[conflict - prev_index - 1 :]
                # Parsed before anything changes: one entry that does not
                # parse must leave the log as it was, not stop the node.
                configs = parse_config_entries(appended)
                if configs is None:
                    return
                log.truncate_and_append(appended)
                self._on_log_rewritten(conflict, configs)
        # Only up to last_new is known to match the leader; a longer tail
        # here may still be a stale leftover.
        commit = min(msg.commit, last_new)
        if commit > self._commit:
            self._commit = commit
        self._persisted_msgs.append(
            Message(APPEND_RESP, self._term, self._name, msg.src, index=last_new)
        )
        return
    hint_index, hint_term = log.find_conflict_by_term(
        min(prev_index, log.last_index), msg.log_term
    )
    self._persisted_msgs.append(
        Message(
            APPEND_RESP,
            self._term,
            self._name,
            msg.src,
            index=prev_index,
            reject=True,
            reject_hint=hint_index,
            hint_term=hint_term,
        )
    )


def handle_snapshot(self: RaftNode, msg: Message) -> None:
    """InstallSnapshot (§7), once the driver holds the whole file."""
    index, snapshot_term = msg.index, msg.log_term
    if index < 1 or snapshot_term < 1 or snapshot_term > msg.term:
        return  # garbage: no snapshot covers nothing or a future term
    if index <= self._commit:
        # Nothing new (a stale or duplicated transfer): say how far we
        # are, as for an old append, so the leader skips ahead.
        self._persisted_msgs.append(
            Message(APPEND_RESP, self._term, self._name, msg.src, index=self._commit)
        )
        return
    try:
        # The driver passes the file's membership; none means the
        # bootstrap one (a cluster whose membership never changed).
        base = Membership.decode(msg.context) if msg.context else self._bootstrap
    except ValueError:
        return  # garbage: a snapshot's membership that does not parse
    kept = self.log.restore(index, snapshot_term)
    self._base_membership = base
    if kept:
        entries = self._config_entries
        del entries[: bisect_right(entries, index, key=config_index)]
    else:
        self._config_entries = []
    self._set_membership(self._current_membership())
    self._commit = index
    # The state machine is loaded from the snapshot instead of applying
    # the entries it covers (index > commit >= what was handed out).
    self._applying = index
    self._pending_snapshot = SnapshotMeta(index, snapshot_term, base)
    # Acknowledge the snapshot point only: a kept suffix may still be a
    # stale leftover that the next append repairs.
    self._persisted_msgs.append(
        Message(APPEND_RESP, self._term, self._name, msg.src, index=index)
    )


def handle_heartbeat(self: RaftNode, msg: Message) -> None:
    # The leader sends min(match, commit), so this prefix agrees with it.
    commit = min(msg.commit, self.log.last_index)
    if commit > self._commit:
        self._commit = commit
    # context is echoed: it numbers the leader's heartbeat round, which
    # confirms reads and dates the lease (prez.raft.read_only).
    self._persisted_msgs.append(
        Message(HEARTBEAT_RESP, self._term, self._name, msg.src, context=msg.context)
    )


def report_snapshot(self: RaftNode, peer: str, ok: bool) -> None:
    """The driver's verdict on the snapshot transfer to `peer` that a
    SNAPSHOT message started: `ok` once the follower has the whole file,
    False when the transfer broke or the follower refused it.

    On success the leader waits for the follower's answer (or a
    heartbeat answer) and then probes after the snapshot; on failure it
    probes again after `snapshot_retry_ticks`, which sends a new
    SNAPSHOT if the follower still needs one. Ignored when this node is
    no longer leader or `peer` is not waiting for a snapshot.
    """
    progress = self._progress.get(peer)
    if progress is None or progress.state is not ProgressState.SNAPSHOT:
        return
    pending = progress.pending_snapshot
    progress.become_probe()
    progress.paused = True
    if ok:
        progress.next = max(progress.match + 1, pending + 1)
    else:
        progress.next = progress.match + 1
        progress.retry_wait = self.config.snapshot_retry_ticks


def tick_leader(self: RaftNode) -> None:
    for peer, progress in self._progress.items():
        if progress.retry_wait:
            progress.retry_wait -= 1
            if not progress.retry_wait:
                progress.paused = False
                self._pending_sends[peer] = True
    self._heartbeat_elapsed += 1
    self._election_elapsed += 1
    if self._transfer_target is not None:
        self._transfer_elapsed += 1
        if self._transfer_elapsed >= self._election_ticks:
            # The target did not take over in time: lead on.
            self._transfer_target = None
    if self._election_elapsed >= self._election_ticks:
        self._election_elapsed = 0
        if self._check_quorum and not self._quorum_active():
            # We may be the stale side of a partition: step down so that
            # clients go elsewhere instead of waiting forever.
            self._become_follower(self._term, None)
            return
    if self._heartbeat_elapsed >= self._heartbeat_ticks:
        self._heartbeat_elapsed = 0
        self._bcast_heartbeat()


def quorum_active(self: RaftNode) -> bool:
    voters = self._voters
    active = int(self._name in voters)
    for peer, progress in self._progress.items():
        if progress.recent_active and peer in voters:
            active += 1
        progress.recent_active = False
    return active >= self._quorum


def bcast_heartbeat(self: RaftNode) -> None:
    # Every round is numbered and dated: an answer to round r confirms
    # every read waiting for a round <= r and dates the lease.
    self._round += 1
    self._round_due = False
    sent = self._round_sent
    sent[self._round] = self._ticks
    # Answers older than a lease are of no use for it.
    horizon = self._ticks - self._election_ticks
    while len(sent) > 1:
        oldest = next(iter(sent))
        if sent[oldest] >= horizon:
            break
        del sent[oldest]
    context = self._round.to_bytes(8, "big")
    commit = self._commit
    msgs = self._msgs
    for peer, progress in self._progress.items():
        msgs.append(
            Message(
                HEARTBEAT,
                self._term,
                self._name,
                peer,
                commit=min(progress.match, commit),
                context=context,
            )
        )


def flush_sends(self: RaftNode) -> None:
    if self._bcast_new_entries:
        self._bcast_new_entries = False
        pending = self._pending_sends
        for peer in self._others:
            pending.setdefault(peer, False)
    if self._pending_sends:
        pending = self._pending_sends
        self._pending_sends = {}
        for peer, allow_empty in pending.items():
            self._send_append(peer, allow_empty)


def send_append(self: RaftNode, peer: str, allow_empty: bool) -> None:
    progress = self._progress[peer]
    log = self.log
    last_index = log.last_index
    if progress.retry_wait:
        return  # a snapshot transfer failed: wait before probing again
    replicate = progress.state is ProgressState.REPLICATE
    while True:
        if progress.paused:  # always so in snapshot state
            return
        if replicate and len(progress.inflight) >= self._max_inflight:
            return
        prev_index = progress.next - 1
        prev_term = log.term_at(prev_index)
        if prev_term is None:
            if prev_index < log.offset:
                # The follower needs entries we no longer hold.
                self._send_snapshot(peer, progress)
            return
        entries = (
            log.slice(progress.next, last_index + 1, self._max_bytes)
            if progress.next <= last_index
            else []
        )
        if not entries and not allow_empty:
            return
        progress.sent_commit = self._commit
        self._msgs.append(
            Message(
                APPEND,
                self._term,
                self._name,
                peer,
                index=prev_index,
                log_term=prev_term,
                commit=self._commit,
                entries=entries,
            )
        )
        if not replicate:
            progress.paused = True
            return
        if not entries:
            return
        progress.next = entries[-1].index + 1
        progress.inflight.append(progress.next - 1)
        allow_empty = False


def send_snapshot(self: RaftNode, peer: str, progress: Progress) -> None:
    log = self.log
    progress.become_snapshot(log.offset)
    # One message; the driver streams the file and reports the outcome
    # with report_snapshot().
    self._msgs.append(
        Message(
            SNAPSHOT,
            self._term,
            self._name,
            peer,
            index=log.offset,
            log_term=log.offset_term,
            commit=self._commit,
            # For the driver: the membership its snapshot file records.
            context=self._base_membership.encode(),
        )
    )


def handle_append_response(self: RaftNode, msg: Message) -> None:
    progress = self._progress.get(msg.src)
    if progress is None:
        return  # not (or no longer) a member
    progress.recent_active = True
    if msg.reject:
        if progress.state is ProgressState.SNAPSHOT:
            return  # no append went out since: an answer to an older one
        rejected = msg.index
        if progress.state is ProgressState.REPLICATE:
            if rejected <= progress.match:
                return  # stale answer to an append we already moved past
            # The follower lost the pipelined appends (or restarted):
            # fall back to probing just after what it acknowledged.
            progress.next = progress.match + 1
        else:
            if rejected != progress.next - 1:
                return  # answer to an older probe
            probe = msg.reject_hint
            if msg.hint_term > 0:
                # Skip the follower's whole diverging term at once (§5.3).
                probe, _ = self.log.find_conflict_by_term(
                    msg.reject_hint, msg.hint_term
                )
            progress.next = max(min(rejected, probe + 1), progress.match + 1)
        progress.become_probe()
        self._pending_sends[msg.src] = True
        return
    index = msg.index
    if index <= progress.match or index > self.log.last_index:
        return  # duplicate or reordered answer (or nonsense)
    progress.match = index
    if progress.next <= index:
        progress.next = index + 1
    if progress.state is ProgressState.PROBE:
        progress.become_replicate()
    elif progress.state is ProgressState.SNAPSHOT:
        # Usually the answer to the snapshot; any answer will do once
        # the log holds everything after what the follower matches.
        if index >= self.log.offset:
            progress.become_replicate()
    else:
        inflight = progress.inflight
        while inflight and inflight[0] <= index:
            inflight.popleft()
    if not self._maybe_commit():
        # More to send, or a commit index this follower has not heard
        # (it was paused in probe when the commit moved).
        stale_commit = progress.sent_commit < self._commit
        if stale_commit or msg.src not in self._pending_sends:
            self._pending_sends[msg.src] = stale_commit
    if (
        msg.src == self._transfer_target
        and not self._timeout_now_sent
        and progress.match == self.log.last_index
    ):
        self._send_timeout_now(msg.src)


def handle_heartbeat_response(self: RaftNode, msg: Message) -> None:
    progress = self._progress.get(msg.src)
    if progress is None:
        return  # not (or no longer) a member
    progress.recent_active = True
    if len(msg.context) == 8:
        answered = int.from_bytes(msg.context, "big")
        if answered > progress.read_ack and answered <= self._round:
            progress.read_ack = answered
            sent = self._round_sent.get(answered)
            if sent is not None and (
                progress.lease_tick is None or sent > progress.lease_tick
            ):
                progress.lease_tick = sent
            if self._reads_waiting:
                self._release_reads()
    if progress.state is ProgressState.SNAPSHOT or progress.retry_wait:
        return  # a transfer is running, or we wait before the next one
    progress.paused = False
    if progress.state is ProgressState.REPLICATE and (
        len(progress.inflight) >= self._max_inflight
    ):
        # Appends may have been lost; let one more through so the
        # follower's rejection moves it back to probing.
        progress.inflight.popleft()
    if progress.match < self.log.last_index:
        self._pending_sends[msg.src] = True


def voter_progress(self: RaftNode) -> list[Progress]:
    progress = self._progress
    return [progress[peer] for peer in self.peers if peer in progress]


def is_committable(self: RaftNode, index: int) -> bool:
    """§5.4.2: a leader commits by counting replicas only entries of its
    own term; earlier ones follow implicitly (Figure 8)."""
    return self.log.term_at(index) == self._term


def maybe_commit(self: RaftNode) -> bool:
    """Raise commit to the highest index a majority holds durably; on
    success every follower hears of it at the next ready().

    Counts the voters of the membership in effect, this node only if it
    is one of them. A leader that removed itself steps down once that
    change commits, after telling the followers the commit index."""
    matches = [progress.match for progress in self._voter_progress()]
    if self._name in self._voters:
        matches.append(self.log.persisted)
    candidate = quorum_index(matches, self._quorum)
    if (
        candidate is None
        or candidate <= self._commit
        or not self._is_committable(candidate)
    ):
        return False
    self._commit = candidate
    if not self._term_committed:
        self._term_committed = True
        if self._reads_before_commit:
            waiting = self._reads_before_commit
            self._reads_before_commit = []
            for request in waiting:
                self._leader_read(request)
    pending = self._pending_sends
    for peer in self._others:
        pending[peer] = True
    if self._name not in self._voters and self.membership_index <= self._commit:
        self._flush_sends()
        self._become_follower(self._term, None)
    return True
