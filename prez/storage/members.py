"""A node's membership files and the member registry a snapshot records.

- `raft/bootstrap`: the bootstrap membership (the voters of the FIRST
  nodes.conf, or, for a node that joined a running cluster, that cluster's
  bootstrap voters plus itself as a learner). Written once, atomically, and
  never changed: the Raft core derives the membership from it until the log
  or a snapshot says otherwise, so it must not follow the rewritten
  nodes.conf.
- nodes.conf: the operator's view, rewritten atomically (temp file, fsync,
  rename, fsync the directory) to the current members after each change.
- The member registry: what the driver knows beyond the core's names-only
  `Membership`: each member's cluster address, which learners are to be
  promoted automatically once caught up, and which names were removed (never
  reused unless re-admitted explicitly). It is replicated state (built by
  applying log entries), so a snapshot records it, as lines in the
  snapshot's `members` list.

Line format (bootstrap file and snapshot members alike), one per name:
`voter NAME HOST:PORT`, `learner NAME HOST:PORT`, `learner+ NAME HOST:PORT`
(a learner promoted automatically once caught up), `removed NAME`. A
snapshot written before membership changes existed lists `NAME HOST:PORT`
lines: those give addresses and no membership (the bootstrap one).

No prez.server imports; no network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from prez.errors import StorageError
from prez.raft.types import Membership
from prez.storage.durable import make_dirs, write_file_atomically

BOOTSTRAP_FILE = "bootstrap"

VOTER = "voter"
LEARNER = "learner"
AUTO_PROMOTED_LEARNER = "learner+"
REMOVED = "removed"


@dataclass(slots=True)
class MemberRegistry:
    """Addresses ("host:port" of the cluster bus) by name, learners to promote
    once caught up, and names removed from the cluster."""

    addrs: dict[str, str] = field(default_factory=dict)
    promote: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)

    def copy(self) -> MemberRegistry:
        return MemberRegistry(dict(self.addrs), set(self.promote), set(self.removed))

    def encode(self, membership: Membership) -> list[str]:
        """The lines for `membership` and this registry (sorted: deterministic)."""
        lines = []
        for name in sorted(membership.members):
            if name in membership.voters:
                role = VOTER
            elif name in self.promote:
                role = AUTO_PROMOTED_LEARNER
            else:
                role = LEARNER
            lines.append(f"{role} {name} {self.addrs.get(name, '?:0')}")
        lines.extend(f"{REMOVED} {name}" for name in sorted(self.removed))
        return lines


def decode_members(lines: list[str]) -> tuple[Membership | None, MemberRegistry]:
    """Parse member lines; the membership is None for old-style
    `NAME HOST:PORT` lines (ValueError for anything else malformed)."""
    registry = MemberRegistry()
    voters: set[str] = set()
    learners: set[str] = set()
    old_style = False
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0] == REMOVED:
            registry.removed.add(parts[1])
        elif len(parts) == 2:
            old_style = True
            registry.addrs[parts[0]] = parts[1]
        elif len(parts) == 3 and parts[0] in (VOTER, LEARNER, AUTO_PROMOTED_LEARNER):
            role, name, addr = parts
            registry.addrs[name] = addr
            if role == VOTER:
                voters.add(name)
            else:
                learners.add(name)
                if role == AUTO_PROMOTED_LEARNER:
                    registry.promote.add(name)
        else:
            raise ValueError(f"bad member line {line!r}")
    if old_style or not voters:
        return None, registry
    return Membership(frozenset(voters), frozenset(learners)), registry


def write_atomically(path: str, text: str, fsync: bool = True) -> None:
    """Replace `path` by `text`: after a crash it holds the old or the new text."""
    write_file_atomically(path, text.encode(), fsync=fsync)


def read_bootstrap(raft_dir: str) -> tuple[Membership, MemberRegistry] | None:
    """The durable bootstrap membership, or None if it was never written."""
    path = os.path.join(raft_dir, BOOTSTRAP_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StorageError(f"{path}: cannot be read ({e.strerror})")
    try:
        membership, registry = decode_members(lines)
    except ValueError as e:
        raise StorageError(f"{path}: {e}")
    if membership is None:
        raise StorageError(f"{path}: names no voter")
    return membership, registry


def write_bootstrap(
    raft_dir: str, membership: Membership, registry: MemberRegistry
) -> None:
    # The bootstrap file is usually the first thing written: the raft
    # directory it creates must itself survive a power loss.
    make_dirs(raft_dir)
    lines = MemberRegistry(registry.addrs).encode(membership)
    write_atomically(
        os.path.join(raft_dir, BOOTSTRAP_FILE), "".join(f"{x}\n" for x in lines)
    )


def render_nodes_conf(membership: Membership, addrs: dict[str, str]) -> str:
    """nodes.conf for the current members (the original format, one
    `name host:cluster-port` per line; the roles in a comment)."""
    learners = " ".join(sorted(membership.learners)) or "none"
    lines = [
        "# Rewritten by prez-server after each membership change: the current members.",
        f"# voters: {' '.join(sorted(membership.voters))}; learners: {learners}",
    ]
    lines += [
        f"{name} {addrs[name]}" for name in sorted(membership.members) if name in addrs
    ]
    return "\n".join(lines) + "\n"
