"""The sender's logic (actors/sender.py's Sender) against a scripted node: no Ray, no chain.

``FakeNode`` stands in for the endpoint's RpcClient (the four methods the Sender calls:
send_raw, batch, call, close) and for the chain behind it: it keeps every transaction it is
sent, answers as scripted (refuses, forgets, says "already known"), and mines what it accepted
in nonce order, a block every few milliseconds, reporting each inclusion through
``FakeWatcher`` the way the host's BlockWatcher does. Transactions are signed for real with
random keys; their calldata names the worker and the item, so the node can tell what it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
import pytest
import rlp
from eth_hash.auto import keccak

from actors.blocks import Inclusion
from actors.gaps import MAX_RESENDS
from actors.rpc import SendResult
from actors.sender import Sender
from actors.watcher import Followed
from loadgen.chains.fees import Fees
from loadgen.chains.signer import SignedTx
from loadgen.engine.ledger import WorkerRecord
from loadgen.engine.plan import PhaseSpec, WorkerSpec, constant_rate, paced
from loadgen.engine.sending import Sending
from loadgen.workloads.base import Call, Payload
from tests.support.runs import assert_one_row_per_attempt

pytestmark = pytest.mark.unit

URL = "http://node.test:8545"
CHAIN_ID = 1337
FIRST_NONCE = 7  # what the node answers to eth_getTransactionCount: every worker starts there
PACE = 0.01  # seconds between a worker's slots
GAS = 30_000
TO = bytes.fromhex("11" * 20)
FULL = "txpool is full"


@dataclass(frozen=True, kw_only=True)
class Tagged(Payload):
    """Worker w's item i calls TO with (w, i) in its calldata, padded to make it larger."""

    padding: int = 0

    def builder(self) -> Tagged:
        return self

    def call(self, worker: WorkerSpec, address: str, item: int) -> Call:
        return Call(TO, worker.worker.to_bytes(2, "big") + item.to_bytes(4, "big") + bytes(self.padding))


@dataclass(frozen=True)
class Tx:
    """A (legacy) transaction as the node received it."""

    body: bytes
    hash: bytes
    nonce: int
    worker: int
    item: int

    @classmethod
    def of(cls, body: bytes) -> Tx:
        raw = bytes.fromhex(orjson.loads(body)["params"][0].removeprefix("0x"))
        nonce, _gas_price, _gas, _to, _value, data, *_signature = rlp.decode(raw)
        return cls(body, keccak(raw), int.from_bytes(nonce, "big"), int.from_bytes(data[:2], "big"), int.from_bytes(data[2:6], "big"))


class FakeWatcher:
    """What the sender's inclusion following (actors/settling.py) reads: ``await feed.inclusions_since(cursor)``."""

    def __init__(self) -> None:
        self.inclusions: list[Inclusion] = []
        self.read_to = 0  # the last block reported whole
        self.behind = False  # while set, mined blocks wait in ``unread`` (a watcher that has fallen behind)
        self.unread: list[tuple[int, list[Inclusion]]] = []
        self.deaf = False  # while set, it does not even hear of new blocks (its head poll is stuck too)
        self.heard: dict[int, float] = {}  # the unread blocks: when it heard of each

    def report(self, block: int, inclusions: list[Inclusion]) -> None:
        self.unread.append((block, inclusions))
        if not self.deaf:
            self.heard[block] = time.time()
        if not self.behind:
            self.catch_up()

    def catch_up(self) -> None:
        for block, inclusions in self.unread:
            self.inclusions += inclusions
            self.read_to = block
            self.heard.pop(block, None)
        self.unread = []

    async def inclusions_since(self, cursor: int) -> Followed:
        for _ in range(10):  # like the real one, waits a moment for something new
            if len(self.inclusions) > cursor:
                break
            await asyncio.sleep(0.002)
        return Followed(len(self.inclusions), self.inclusions[cursor:], self.read_to, dict(self.heard))


class FakeNode:
    """An endpoint and its chain. ``refuse(n, tx)`` answers the n-th send (from 1) with an error
    (or None: accepted); ``lose(n, tx)`` accepts it with its hash and forgets it at once;
    ``known(n, tx)`` keeps it but answers "already known"; items in ``reverts`` fail on chain."""

    def __init__(
        self,
        *,
        refuse: Callable[[int, Tx], str | None] = lambda n, tx: None,
        lose: Callable[[int, Tx], bool] = lambda n, tx: False,
        known: Callable[[int, Tx], bool] = lambda n, tx: False,
        mine: bool = True,
        reverts: frozenset[int] = frozenset(),
        hold: Callable[[], bool] = lambda: False,
    ) -> None:
        self.refuse, self.lose, self.known, self.mine, self.reverts = refuse, lose, known, mine, reverts
        self.hold = hold  # while it says so, blocks come but include nothing
        self.on_receive: Callable[[Tx], None] | None = None  # called as a send arrives
        self.before_answer: Callable[[Tx], Awaitable[None]] | None = None  # awaited before accepting one
        self.watcher = FakeWatcher()
        self.sender: Sender | None = None
        self.sends: list[Tx] = []
        self.pool: dict[bytes, Tx] = {}
        self.mined: dict[bytes, int] = {}
        self.next_nonce: dict[int, int] = {}  # per worker
        self.lookups: list[bytes] = []
        self.receipt_lookups: list[bytes] = []
        self.gap_lookups: list[bytes] = []  # the gap check's: made before the sender settles its phase
        self.mined_items: dict[bytes, int] = {}
        self.block = 0
        self.closed = False
        self.url = URL
        self.failures = 0  # an RpcClient's health: this node always answers
        self.last_failure = ""

    # what the Sender calls (RpcClient's interface) -----------------------------------------
    async def send_raw(self, body: bytes, on_sent: Callable[[], None] | None = None) -> SendResult:
        if on_sent is not None:
            on_sent()
        tx = Tx.of(body)
        self.sends.append(tx)
        n = len(self.sends)
        if self.on_receive:
            self.on_receive(tx)
        if error := self.refuse(n, tx):
            return SendResult(False, error, "rpc")
        if not self.lose(n, tx):
            self.pool[tx.hash] = tx
        if self.before_answer:
            await self.before_answer(tx)
        if self.known(n, tx):
            return SendResult(False, "already known", "rpc")
        return SendResult(True, "0x" + tx.hash.hex())

    async def batch(self, calls: list[tuple[str, list]]) -> list:
        answers = []
        for method, params in calls:
            if method == "eth_getTransactionCount":
                answers.append(hex(self.pending_nonce(params[0])))
            elif method == "eth_getTransactionReceipt":
                h = bytes.fromhex(params[0].removeprefix("0x"))
                self.receipt_lookups.append(h)
                answers.append(self.receipt(h))
            elif method == "eth_getTransactionByHash":
                h = bytes.fromhex(params[0].removeprefix("0x"))
                self.lookups.append(h)
                if not settling(self.sender):
                    self.gap_lookups.append(h)
                if h in self.mined:
                    answers.append({"hash": params[0], "blockNumber": hex(self.mined[h])})
                else:
                    answers.append({"hash": params[0], "blockNumber": None} if h in self.pool else None)
            else:
                raise AssertionError(f"unexpected batch call {method}")
        return answers

    async def call(self, method: str, params: list | None = None):
        if method == "eth_blockNumber":
            return hex(self.block)
        raise AssertionError(f"unexpected call {method}: nothing here is mined unseen")

    def pending_nonce(self, address: str) -> int:
        """What geth answers for "pending": past the mined ones and the pool's contiguous run."""
        worker = next((w.spec.worker for w in self.sender.workers if w.signer.address == address), None) if self.sender else None
        nonce = self.next_nonce.get(worker, FIRST_NONCE) if worker is not None else FIRST_NONCE
        pooled = {tx.nonce for tx in self.pool.values() if tx.worker == worker}
        while nonce in pooled:
            nonce += 1
        return nonce

    def receipt(self, h: bytes) -> dict | None:
        if h not in self.mined:
            return None
        status = 0 if self.mined_items[h] in self.reverts else 1
        return {"transactionHash": "0x" + h.hex(), "blockNumber": hex(self.mined[h]), "status": hex(status), "gasUsed": hex(21_000)}

    async def close(self) -> None:
        self.closed = True

    # the chain -------------------------------------------------------------------------------
    def mine_block(self) -> None:
        """Includes what the pool holds in each worker's nonce order: a gap holds up the rest."""
        self.block += 1
        included = []
        for tx in [] if self.hold() else sorted(self.pool.values(), key=lambda t: (t.worker, t.nonce)):
            if tx.nonce == self.next_nonce.get(tx.worker, FIRST_NONCE):
                del self.pool[tx.hash]
                self.next_nonce[tx.worker] = tx.nonce + 1
                self.mined[tx.hash] = self.block
                self.mined_items[tx.hash] = tx.item
                status = 0 if tx.item in self.reverts else 1
                included.append(Inclusion(tx.hash, self.block, time.time(), status, 21_000, time.time(), 1))
        self.watcher.report(self.block, included)

    async def run(self, block_s: float = 0.005) -> None:
        while True:
            await asyncio.sleep(block_s)
            if self.mine:
                self.mine_block()


@dataclass
class Ran:
    sender: Sender
    t0: float
    signed_ahead: int
    prepared: dict[int, list[SignedTx]]  # per worker, the queue prepare_phase signed
    finished: float  # when run_phase returned: sent, and drained

    def rows(self, worker: int = 0) -> list:
        return sorted((r for r in self.sender.collector.rows if r.worker == worker), key=lambda r: r.t_scheduled)


async def sender_on(node: FakeNode, workers: int, mode: str = "closed", max_unanswered: int = 64, gap_check_s: float = 60.0) -> Sender:
    sender = Sender("test", "local", CHAIN_ID, Fees.legacy(1), Sending(mode, max_unanswered, gap_check_s=gap_check_s))
    sender.clients[URL] = node  # add_workers takes the endpoint's client from here
    specs = [WorkerSpec(worker=w, key_index=w + 1, pool=-1, endpoint=URL, actor=0) for w in range(workers)]
    await sender.add_workers(specs, [os.urandom(32) for _ in specs])
    node.sender = sender
    return sender


async def drive(
    node: FakeNode,
    phase: PhaseSpec,
    *,
    workers: int = 1,
    payload: Payload | None = None,
    budget: int | None = None,
    commit_timeout_s: float = 3.0,
    gap_check_s: float = 60.0,
    before: Callable[[Sender], None] = lambda sender: None,
    mode: str = "closed",
    max_unanswered: int = 64,
) -> Ran:
    """Prepares and runs one phase as a sender actor does, with the node mining meanwhile."""
    payload = payload or Tagged()
    sender = await sender_on(node, workers, mode, max_unanswered, gap_check_s)
    if budget is not None:
        sender.presigner.budget_bytes = budget
    before(sender)
    sender.start_background(node.watcher)
    chain = asyncio.create_task(node.run())
    try:
        signed = sender.prepare_phase(phase, payload)
        prepared = {w.spec.worker: list(w.ahead) for w in sender.workers}
        t0 = time.time() + 0.05
        await sender.run_phase(phase, payload, t0, commit_timeout_s)
        finished = time.time()
    finally:
        chain.cancel()
        await sender.close()
    assert node.closed
    return Ran(sender, t0, signed, prepared, finished)


def refuse_first(*keys: tuple[int, int]) -> Callable[[int, Tx], str | None]:
    """Refuses the first send of each (worker, item) in keys."""
    pending = set(keys)

    def refuse(n: int, tx: Tx) -> str | None:
        if (tx.worker, tx.item) in pending:
            pending.discard((tx.worker, tx.item))
            return FULL
        return None

    return refuse


def reveal(items: int, workers: int = 1, max_retries: int | None = 3) -> PhaseSpec:
    return paced("reveal", workers, PACE, items, spread=False, max_retries=max_retries, gas_limit=GAS)


# (a) a refused item keeps its nonce ---------------------------------------------------------


def test_a_refused_item_goes_again_as_the_same_bytes_in_the_next_slot_and_the_rest_shift():
    node = FakeNode(refuse=lambda n, tx: FULL if n == 2 else None)
    phase = reveal(4)
    ran = asyncio.run(drive(node, phase))

    assert [t.item for t in node.sends] == [0, 1, 1, 2, 3]
    assert [t.nonce for t in node.sends] == [7, 8, 8, 9, 10]  # no nonce burned
    assert node.sends[2].body == node.sends[1].body  # the very same bytes, not signed again
    rows = ran.rows()
    assert [(r.chunk_index, r.attempt, r.status) for r in rows] == [
        (0, 1, "committed"),
        (1, 1, "rejected"),
        (1, 2, "committed"),
        (2, 1, "committed"),
        (3, 1, "committed"),
    ]
    # slot k at t0 + k·pace: the retry took slot 2, items 2 and 3 moved one slot later
    assert [r.t_scheduled for r in rows] == [phase.slot_time(ran.t0, 0, k) for k in range(5)]
    rejected, retried = rows[1], rows[2]
    assert rejected.error == f"rpc: {FULL}"
    assert rejected.nonce == retried.nonce == 8 and rejected.tx_hash == retried.tx_hash == node.sends[1].hash
    assert [r.nonce for r in rows if r.status == "committed"] == [7, 8, 9, 10]
    stats = ran.sender.stats()
    assert (stats.scheduled, stats.sent, stats.accepted, stats.committed, stats.rejected) == (5, 5, 4, 4, 1)
    assert_one_row_per_attempt(ran.sender.collector.take(), planned=4)


def test_an_already_known_answer_means_accepted():
    """A node that already has these bytes (a retry of a send that timed out) refuses them as known."""
    node = FakeNode(known=lambda n, tx: n == 1)
    ran = asyncio.run(drive(node, reveal(2)))
    rows = ran.rows()
    assert [(r.chunk_index, r.attempt, r.status) for r in rows] == [(0, 1, "committed"), (1, 1, "committed")]
    assert rows[0].tx_hash == node.sends[0].hash  # the hash the sender computed: the node gave none
    assert len(node.sends) == 2 and ran.sender.accepted == 2


# (b) giving up after max_retries ------------------------------------------------------------


def test_after_max_retries_the_worker_gives_up_and_the_rest_is_unsent():
    node = FakeNode(refuse=lambda n, tx: FULL if tx.item == 1 else None)
    phase = reveal(4, max_retries=2)
    ran = asyncio.run(drive(node, phase))

    assert [t.item for t in node.sends] == [0, 1, 1, 1]  # the first send and 2 retries, then nothing
    assert len({t.body for t in node.sends[1:]}) == 1
    rows = ran.rows()
    why = "gave up: item 1 rejected 3 times"
    assert [(r.chunk_index, r.attempt, r.status, r.error) for r in rows] == [
        (0, 1, "committed", None),
        (1, 1, "rejected", f"rpc: {FULL}"),
        (1, 2, "rejected", f"rpc: {FULL}"),
        (1, 3, "rejected", f"rpc: {FULL}"),
        (2, 1, "unsent", why),
        (3, 1, "unsent", why),
    ]
    keys = [(r.worker, r.phase, r.chunk_index, r.attempt) for r in rows]
    assert len(set(keys)) == len(keys)  # no attempt number twice
    unsent = rows[4:]
    assert all(r.nonce == -1 and r.tx_hash == b"" and math.isnan(r.t_sent) for r in unsent)
    assert [r.t_scheduled for r in unsent] == [phase.slot_time(ran.t0, 0, k) for k in (4, 5)]  # the slots they would have had
    assert ran.sender.scheduled == 6 and ran.sender.sent == 4
    assert_one_row_per_attempt(ran.sender.collector.take(), planned=4)


# (c) signing ahead --------------------------------------------------------------------------


def test_prepare_phase_signs_ahead_what_the_budget_holds():
    payload = Tagged(padding=100)  # 106 bytes of calldata: the sender reckons 306 bytes a transaction, twice that as hex
    phase = reveal(6, workers=2)
    node = FakeNode()
    sender = asyncio.run(sender_on(node, workers=2))

    budget = 2 * 3 * 2 * (106 + 200)  # three transactions ahead for each of the two workers
    sender.presigner.budget_bytes = budget
    assert sender.prepare_phase(phase, payload) == 6
    for w in sender.workers:
        txs = [Tx.of(s.body) for s in w.ahead]
        assert [(t.worker, t.item, t.nonce) for t in txs] == [(w.spec.worker, i, FIRST_NONCE + i) for i in range(3)]
    assert sum(len(s.body) for w in sender.workers for s in w.ahead) <= budget
    assert node.sends == []  # nothing sent while preparing

    sender.presigner.budget_bytes = 1  # not even one: still the head of each queue
    assert sender.prepare_phase(phase, payload) == 2
    assert [len(w.ahead) for w in sender.workers] == [1, 1]
    sender.presigner.budget_bytes = 10**9  # more than the phase needs: every item, and no more
    assert sender.prepare_phase(phase, payload) == 12
    assert [len(w.ahead) for w in sender.workers] == [6, 6]


def test_the_queue_stays_as_deep_as_prepared_while_items_are_accepted():
    payload = Tagged(padding=100)
    node = FakeNode(refuse=refuse_first((0, 2)))
    depths: dict[int, list[int]] = {0: [], 1: []}
    node.on_receive = lambda tx: depths[tx.worker].append(len(node.sender.workers[tx.worker].ahead))
    signed_while_sending: list[tuple[int, int, int]] = []

    def count_signing(sender: Sender) -> None:
        sign = sender.presigner.sign

        def counted(w, item, nonce, gas):
            if node.sends:  # once the phase is sending (prepare_phase signs before it)
                signed_while_sending.append((w.spec.worker, item, nonce))
            return sign(w, item, nonce, gas)

        sender.presigner.sign = counted  # type: ignore[method-assign]

    ran = asyncio.run(drive(node, reveal(6, workers=2), workers=2, payload=payload, budget=2 * 3 * 2 * 306, before=count_signing))

    assert ran.signed_ahead == 6
    # at each send, the queue holds the head and what follows it, up to the prepared depth 3
    assert depths[0] == [3, 3, 3, 3, 3, 2, 1]  # item 2 refused once: its retry finds the queue as it was
    assert depths[1] == [3, 3, 3, 3, 2, 1]
    # the first three sends of a worker are what prepare_phase signed; each later item was signed once
    for worker in (0, 1):
        mine = [t for t in node.sends if t.worker == worker]
        assert [t.body for t in mine[:3]] == [s.body for s in ran.prepared[worker]]
        assert all(t.nonce == FIRST_NONCE + t.item for t in mine)
        assert sorted(i for w, i, _ in signed_while_sending if w == worker) == [3, 4, 5]
    assert all(nonce == FIRST_NONCE + item for _, item, nonce in signed_while_sending)
    assert {r.status for r in ran.sender.collector.rows} == {"committed", "rejected"}
    assert ran.sender.collector.counts["committed"] == 12


# (d) draining ---------------------------------------------------------------------------------


def test_an_accepted_transaction_never_included_is_dropped_after_the_commit_timeout():
    node = FakeNode(mine=False)
    ran = asyncio.run(drive(node, reveal(2), commit_timeout_s=0.3))

    rows = ran.rows()
    why = "not in a block 0.3s after the last send (still in a node's pool when the phase ended)"
    assert [(r.chunk_index, r.status, r.error) for r in rows] == [(0, "dropped", why), (1, "dropped", why)]
    assert set(node.receipt_lookups) == {r.tx_hash for r in rows}  # asked of the node before being called dropped
    assert all(r.block_number is None and math.isnan(r.t_included) and r.raw_body is None for r in rows)
    last_send = max(r.t_acked for r in rows)
    # waited the timeout, and not for the watcher (it reads every block here: a wait for it would be
    # settling's 10 s stall bound); a second of slack for a busy machine's scheduling
    assert last_send + 0.3 <= ran.finished < last_send + 1.3
    assert not ran.sender.inflight


def test_an_inclusion_reported_before_the_nodes_answer_still_commits_the_row():
    node = FakeNode(mine=False, reverts=frozenset({1}))
    seen_first: list[bool] = []

    async def mined_before_answering(tx: Tx) -> None:
        node.mine_block()
        await asyncio.sleep(0.03)  # the watcher reports it, the sender reads it, then the answer comes
        seen_first.append(tx.hash in node.sender.recent and tx.hash not in node.sender.inflight)

    node.before_answer = mined_before_answering
    ran = asyncio.run(drive(node, reveal(2), commit_timeout_s=10))

    assert seen_first == [True, True]  # both went the `recent` way
    rows = ran.rows()
    assert [(r.chunk_index, r.status, r.block_number) for r in rows] == [(0, "committed", 1), (1, "reverted", 2)]
    assert all(r.t_sent <= r.t_included <= r.t_acked for r in rows)
    assert not ran.sender.recent and not ran.sender.inflight
    assert ran.finished - max(r.t_acked for r in rows) < 1  # the drain had nothing to wait for


def test_a_stopped_run_leaves_the_rest_unsent_and_gives_what_it_sent_a_moment():
    node = FakeNode(mine=False)
    node.on_receive = lambda tx: node.sender.stop(grace_s=0.1) if len(node.sends) == 3 else None
    ran = asyncio.run(drive(node, reveal(10), commit_timeout_s=30))

    assert len(node.sends) == 3
    rows = ran.rows()
    assert [(r.chunk_index, r.status) for r in rows] == [(i, "dropped") for i in range(3)] + [(i, "unsent") for i in range(3, 10)]
    assert {r.error for r in rows[:3]} == {"run stopped before inclusion"}
    assert {(r.error, r.attempt) for r in rows[3:]} == {("run stopped", 1)}
    assert ran.finished - max(r.t_acked for r in rows[:3]) < 1  # the grace, not the 30 s commit timeout


# (e) nonce gaps -------------------------------------------------------------------------------


def test_a_transaction_the_node_forgets_is_sent_again_as_it_was():
    node = FakeNode(lose=lambda n, tx: n == 2)  # accepts item 1, then forgets it: item 2 waits behind the gap
    # item 1's answer waits for item 2's send (open mode), so item 2 is answered first and is due
    # for a look-up whenever item 1 is: the round that finds the gap looks at both, whatever the
    # machine's load does to the rounds' timing (answered a pace apart, a round could fall between)
    received: list[float] = []
    second_sent = asyncio.Event()

    def on_receive(tx: Tx) -> None:
        received.append(time.time())
        if tx.item == 2:
            second_sent.set()

    async def after_item_2(tx: Tx) -> None:
        if tx.item == 1 and len(node.sends) == 2:
            await second_sent.wait()

    node.on_receive, node.before_answer = on_receive, after_item_2
    ran = asyncio.run(drive(node, reveal(3), gap_check_s=0.1, mode="open"))

    assert [t.item for t in node.sends] == [0, 1, 2, 1]
    assert node.sends[3].body == node.sends[1].body
    assert node.sends[2].hash in node.lookups  # looked up too, but in the pool: not sent again
    rows = ran.rows()
    assert [(r.chunk_index, r.attempt, r.status, r.resends) for r in rows] == [
        (0, 1, "committed", 0),
        (1, 1, "committed", 1),
        (2, 1, "committed", 0),
    ]
    assert ran.sender.gaps_recovered == 1
    assert node.next_nonce[0] == FIRST_NONCE + 3  # the gap filled: everything after it mined
    # t_acked stays the node's answer to the first send: the re-send does not move it
    assert rows[1].t_sent < rows[1].t_acked < received[3]


def test_a_gap_that_never_fills_is_resent_a_bounded_number_of_times_then_dropped():
    node = FakeNode(lose=lambda n, tx: True)  # forgets every copy
    ran = asyncio.run(drive(node, reveal(1), gap_check_s=0.05, commit_timeout_s=3.0))  # 5 re-sends take ~0.4 s: room for a busy machine

    assert len(node.sends) == 1 + MAX_RESENDS
    assert len({t.body for t in node.sends}) == 1
    (row,) = ran.rows()
    assert (row.status, row.resends, row.attempt) == ("dropped", MAX_RESENDS, 1)


# (f) fixed slots --------------------------------------------------------------------------------


def test_with_fixed_slots_a_refused_slot_is_lost_and_the_next_slot_carries_on():
    phase = constant_rate("transfer", 1, 1 / PACE, 5 * PACE, gas_limit=GAS)
    assert phase.fixed_slots and phase.items == (5,)
    node = FakeNode(refuse=lambda n, tx: FULL if n == 2 else None)
    ran = asyncio.run(drive(node, phase))

    assert len(node.sends) == 5  # five slots, five sends: a refused one is not made up for
    rows = ran.rows()
    assert [(r.chunk_index, r.status) for r in rows] == [
        (0, "committed"),
        (1, "rejected"),
        (2, "committed"),
        (3, "committed"),
        (4, "committed"),
    ]
    assert [r.t_scheduled for r in rows] == [phase.slot_time(ran.t0, 0, k) for k in range(5)]
    # the refused nonce is the next slot's: no gap, everything accepted is mined
    assert rows[1].nonce == rows[2].nonce == FIRST_NONCE + 1
    assert [r.nonce for r in rows if r.status == "committed"] == [FIRST_NONCE + i for i in range(4)]
    assert node.next_nonce[0] == FIRST_NONCE + 4
    assert ran.sender.collector.counts["unsent"] == 0 and ran.sender.scheduled == 5


# open mode: a slot does not wait for the node's answer -----------------------------------------


class SlowNode(FakeNode):
    """Takes ``answer_s`` to answer every send, refusals included; what it accepts is in its
    pool (and may be mined) before the answer leaves, as on a busy node."""

    def __init__(self, answer_s: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.answer_s = answer_s
        self.received_at: list[float] = []

    async def send_raw(self, body: bytes, on_sent: Callable[[], None] | None = None) -> SendResult:
        self.received_at.append(time.time())
        result = await super().send_raw(body, on_sent)
        await asyncio.sleep(self.answer_s)
        return result


def lags(ran: Ran, worker: int = 0) -> list[float]:
    return [r.t_sent - r.t_scheduled for r in ran.rows(worker) if not math.isnan(r.t_sent)]


def test_open_mode_keeps_the_schedule_while_the_node_answers_late_and_closed_mode_does_not():
    # the node answers nothing until all 12 are in: an open worker still sends each at its slot
    # (a worker that waited for an answer would stall here until the 5 s escape below)
    node = FakeNode()
    all_in = asyncio.Event()
    node.on_receive = lambda tx: all_in.set() if len(node.sends) == 12 else None
    received_at_answer: list[int] = []

    async def hold_the_answers(tx: Tx) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), 5)
        received_at_answer.append(len(node.sends))

    node.before_answer = hold_the_answers
    opened = asyncio.run(drive(node, reveal(12), mode="open"))
    assert received_at_answer[0] == 12  # the first answer left after the twelfth send arrived
    answer = 5 * PACE
    closed = asyncio.run(drive(SlowNode(answer), reveal(12), mode="closed"))
    assert max(lags(closed)) > 5 * answer  # each waits for the previous answer: the lag grows
    assert min(r.t_acked - r.t_sent for r in closed.rows()) >= answer  # the answer time is recorded
    for ran in (opened, closed):
        rows = ran.rows()
        assert [r.status for r in rows] == ["committed"] * 12
        assert [r.nonce for r in rows] == list(range(FIRST_NONCE, FIRST_NONCE + 12))


def test_open_mode_sends_a_late_refusal_again_as_the_same_bytes_and_later_ones_wait_behind_it():
    item_4_in = asyncio.Event()

    class RefusesLate(SlowNode):
        """Answers item 1's refusal only once item 4 has arrived."""

        async def send_raw(self, body: bytes, on_sent: Callable[[], None] | None = None) -> SendResult:
            result = await super().send_raw(body, on_sent)
            if not result.ok:
                await asyncio.wait_for(item_4_in.wait(), 5)
            return result

    node = RefusesLate(4 * PACE, refuse=refuse_first((0, 1)))
    node.on_receive = lambda tx: item_4_in.set() if tx.item == 4 else None
    ran = asyncio.run(drive(node, reveal(8), mode="open"))
    rows = ran.rows()
    assert_one_row_per_attempt_of(rows, planned=8)
    first, again = [r for r in rows if r.chunk_index == 1]
    assert (first.status, again.status, again.attempt) == ("rejected", "committed", 2)
    assert first.nonce == again.nonce == FIRST_NONCE + 1
    sent_twice = [tx.body for tx in node.sends if (tx.worker, tx.item) == (0, 1)]
    assert len(sent_twice) == 2 and sent_twice[0] == sent_twice[1]  # the very same bytes
    # items 2, 3 and 4 went out before the refusal came back: the retry took a later free slot
    order = [tx.item for tx in node.sends]
    assert order[:5] == [0, 1, 2, 3, 4] and order.index(1, 2) >= 5
    assert again.t_scheduled >= first.t_scheduled + 4 * PACE - 1e-9
    committed = sorted(r.nonce for r in rows if r.status == "committed")
    assert committed == list(range(FIRST_NONCE, FIRST_NONCE + 8))  # contiguous: nothing lost, nothing twice
    assert ran.sender.workers[0].stuck is None and ran.sender.workers[0].nonce == FIRST_NONCE + 8


def assert_one_row_per_attempt_of(rows: list, planned: int) -> None:
    keys = [(r.chunk_index, r.attempt) for r in rows]
    assert len(set(keys)) == len(keys)
    assert len(rows) == planned + sum(1 for r in rows if r.attempt > 1)


def test_open_mode_gives_up_and_says_what_was_sent_behind_the_gap_can_never_land():
    node = SlowNode(3 * PACE, refuse=lambda n, tx: FULL if tx.item == 1 else None)

    async def two_phases() -> Sender:
        sender = await sender_on(node, 1, "open")
        sender.start_background(node.watcher)
        chain = asyncio.create_task(node.run())
        try:
            for name in ("first", "second"):
                phase = paced(name, 1, PACE, 6, spread=False, max_retries=2, gas_limit=GAS)
                sender.prepare_phase(phase, Tagged())
                await sender.run_phase(phase, Tagged(), time.time() + 0.05, commit_timeout_s=0.3)
        finally:
            chain.cancel()
            await sender.close()
        return sender

    sender = asyncio.run(two_phases())
    rows = sorted(sender.collector.rows, key=lambda r: (r.phase, r.t_scheduled))
    first = [r for r in rows if r.phase == "first"]
    by_status = {s: [r for r in first if r.status == s] for s in ("committed", "rejected", "dropped", "unsent")}
    assert [r.chunk_index for r in by_status["committed"]] == [0]
    assert [(r.chunk_index, r.attempt) for r in by_status["rejected"]] == [(1, 1), (1, 2), (1, 3)]
    # sent after item 1 and before its third refusal came back: accepted, then stuck behind nonce 8
    behind = by_status["dropped"]
    assert behind and all(r.nonce > FIRST_NONCE + 1 and "never includable" in r.error for r in behind)
    assert sender.stranded == len(behind)  # the driver's wait for empty pools allows for them
    assert all(r.error == "gave up: item 1 rejected 3 times" for r in by_status["unsent"])
    assert sorted(r.chunk_index for r in behind + by_status["unsent"]) == [2, 3, 4, 5]
    # the worker sends nothing more in the run: its later nonces would land out of order
    second = [r for r in rows if r.phase == "second"]
    assert len(second) == 6 and all(r.status == "unsent" and "never accepted" in r.error for r in second)
    assert {tx.nonce for tx in node.sends} <= set(range(FIRST_NONCE, FIRST_NONCE + 6))  # nothing of the second phase went out


def test_open_mode_bounds_what_waits_for_an_answer_and_the_wait_shows_as_lag():
    release = asyncio.Event()
    node = FakeNode()

    async def hold(tx: Tx) -> None:
        await release.wait()

    node.before_answer = hold

    async def scenario() -> Ran:
        async def let_go() -> None:
            while len(node.sends) < 3:
                await asyncio.sleep(PACE / 10)
            await asyncio.sleep(8 * PACE)
            assert len(node.sends) == 3  # the bound: the 4th slot waits for an answer
            release.set()

        task = asyncio.create_task(let_go())
        ran = await drive(node, reveal(6), mode="open", max_unanswered=3)
        await task
        return ran

    ran = asyncio.run(scenario())
    rows = ran.rows()
    assert [r.status for r in rows] == ["committed"] * 6
    assert lags(ran)[3] > 5 * PACE  # slot 3 went out only when the node answered


def test_a_stop_reaches_workers_far_behind_their_schedule_before_their_next_slot():
    node = FakeNode(mine=False)
    workers, items = 40, 500
    phase = reveal(items, workers=workers)
    sent_at_stop: list[int] = []

    def stop() -> None:  # as the driver's stop comes: a callback the actor's loop runs in its turn
        sent_at_stop.append(len(node.sends))
        node.sender.stop(grace_s=0.05)

    def on_first(tx: Tx) -> None:
        if len(node.sends) == 1:
            asyncio.get_running_loop().call_soon(stop)

    node.on_receive = on_first

    async def scenario() -> Sender:
        sender = await sender_on(node, workers, mode="open", max_unanswered=10 * items)
        sender.start_background(node.watcher)
        sender.prepare_phase(phase, Tagged())
        # five seconds behind at the start: every worker has all its slots due at once
        await sender.run_phase(phase, Tagged(), time.time() - 5, commit_timeout_s=0.1)
        await sender.close()
        return sender

    sender = asyncio.run(scenario())
    # the stop waited a turn of the loop (a slot of each worker), not every worker's backlog
    assert sent_at_stop[0] <= 2 * workers
    assert len(node.sends) - sent_at_stop[0] <= workers  # at most the slot each worker was at
    assert len(sender.collector.rows) == workers * items  # the rest is unsent, one row each


# (g) past capacity: the record equals the chain ----------------------------------------------------


def settling(sender: Sender | None) -> bool:
    """The sender has passed its phase's commit deadline and settles what is left."""
    return sender is not None and sender._late_after != math.inf


async def catch_up_after(node: FakeNode, delay_s: float) -> None:
    """The watcher stays behind until the sender settles, then reads everything ``delay_s`` later."""
    while not settling(node.sender):
        await asyncio.sleep(0.005)
    await asyncio.sleep(delay_s)
    node.watcher.behind = False
    node.watcher.catch_up()


def behind_until_settling(node: FakeNode, delay_s: float = 0.3) -> Callable[[Sender], None]:
    def before(sender: Sender) -> None:
        node.watcher.behind = True
        node.catching_up = asyncio.get_running_loop().create_task(catch_up_after(node, delay_s))

    return before


def test_a_watcher_behind_at_the_deadline_is_waited_for_and_what_it_had_not_read_is_committed_in_time():
    node = FakeNode()
    # a commit timeout a busy machine's scheduling cannot eat (the fake node mines every 5 ms)
    ran = asyncio.run(drive(node, reveal(3, workers=2), workers=2, commit_timeout_s=1.0, before=behind_until_settling(node)))

    rows = ran.rows(0) + ran.rows(1)
    assert [r.status for r in rows] == ["committed"] * 6
    assert all(math.isnan(r.late_s) for r in rows)  # mined, and announced, before the deadline
    assert all(r.t_included < r.t_acked + 1.0 for r in rows)  # dated when mined, not when the watcher read them
    assert node.receipt_lookups == []  # the watcher's blocks said it all
    assert ran.finished - max(r.t_acked for r in rows) >= 1.0 + 0.3  # it waited for the watcher


def test_an_inclusion_after_the_deadline_keeps_its_block_and_is_marked_late():
    node = FakeNode()
    node.hold = lambda: not settling(node.sender)  # mined only once the deadline has passed
    ran = asyncio.run(drive(node, reveal(2), commit_timeout_s=0.2, before=behind_until_settling(node)))

    rows = ran.rows()
    expected = [(i, "committed", node.mined[r.tx_hash]) for i, r in enumerate(rows)]
    assert [(r.chunk_index, r.status, r.block_number) for r in rows] == expected
    deadline = max(r.t_acked for r in rows) + 0.2
    assert all(0 < r.late_s < 1 and r.t_included == pytest.approx(deadline + r.late_s, abs=0.01) for r in rows)


def test_a_resent_transaction_included_late_has_one_row_with_its_resend():
    node = FakeNode(lose=lambda n, tx: n == 2)
    node.hold = lambda: not settling(node.sender)
    # the gap check re-sends item 1 within a few rounds of 0.05 s; the 1 s timeout leaves a busy machine room for them
    ran = asyncio.run(drive(node, reveal(3), commit_timeout_s=1.0, gap_check_s=0.1, before=behind_until_settling(node)))

    rows = ran.rows()
    assert [(r.chunk_index, r.attempt, r.status, r.resends) for r in rows] == [
        (0, 1, "committed", 0),
        (1, 1, "committed", 1),
        (2, 1, "committed", 0),
    ]
    assert all(r.late_s > 0 for r in rows)
    assert [t.item for t in node.sends] == [0, 1, 2, 1]


@pytest.mark.parametrize("deaf", [False, True], ids=["hears-blocks", "deaf"])
def test_a_stuck_watcher_is_not_waited_for_and_direct_look_ups_find_what_the_chain_holds(monkeypatch, deaf):
    monkeypatch.setattr("actors.settling.CATCH_UP_STALL_S", 0.2)
    node = FakeNode()
    node.watcher.behind = True  # and never catches up
    node.watcher.deaf = deaf
    ran = asyncio.run(drive(node, reveal(3), commit_timeout_s=0.2))

    rows = ran.rows()
    assert [(r.status, r.block_number) for r in rows] == [("committed", node.mined[r.tx_hash]) for r in rows]
    assert set(node.receipt_lookups) == set(node.mined)
    assert ran.finished - max(r.t_acked for r in rows) < 2
    if deaf:
        # seen only by the look-up, after the deadline: on the chain, not provably in time
        assert all(r.late_s > 0 for r in rows)
    else:
        # found by the look-ups in blocks the watcher heard of as they came but never read:
        # dated when it heard of them, in time, as a watcher keeping up would have dated them
        assert [r.t_included for r in rows] == [node.watcher.heard[r.block_number] for r in rows]
        assert not any(r.late_s > 0 for r in rows)  # (NaN: not late)


def test_an_inclusion_after_the_drain_ended_adds_no_row():
    node = FakeNode()
    drained = asyncio.Event()
    node.hold = lambda: not drained.is_set()

    async def run() -> Sender:
        sender = await sender_on(node, 1)
        sender.start_background(node.watcher)
        chain = asyncio.create_task(node.run())
        try:
            await sender.run_phase(reveal(2), Tagged(), time.time() + 0.05, 0.2)
            drained.set()  # the node includes them now, and the watcher reports it to a sender that still follows
            while len(node.mined) < 2 or node.watcher.read_to < max(node.mined.values()):
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
        finally:
            chain.cancel()
            await sender.close()
        return sender

    sender = asyncio.run(run())
    assert [(r.chunk_index, r.status) for r in sender.collector.rows] == [(0, "dropped"), (1, "dropped")]
    assert set(sender.recent) == set(node.mined)  # heard, and kept apart: the rows were final


def test_an_inclusion_reported_twice_is_one_row():
    node = FakeNode()
    node.watcher.report = lambda block, inclusions: FakeWatcher.report(node.watcher, block, inclusions + inclusions)
    ran = asyncio.run(drive(node, reveal(4), commit_timeout_s=1.0))

    rows = ran.rows()
    assert [(r.chunk_index, r.status) for r in rows] == [(i, "committed") for i in range(4)]
    assert len(ran.sender.collector.rows) == 4


def test_the_gap_check_asks_the_pending_nonce_and_looks_up_only_from_the_gap_on():
    # thousands wait at capacity: below the node's pending nonce every one is in the pool (or a
    # block) and is never asked about; the lost one and what waits behind it are
    node = FakeNode(mine=False, lose=lambda n, tx: n == 5)
    ran = asyncio.run(drive(node, reveal(10), commit_timeout_s=2.0, gap_check_s=0.1))  # the gap is due 0.1 s after its send

    sent = {t.item: t.hash for t in node.sends}
    assert not {sent[i] for i in range(4)} & set(node.gap_lookups)  # below the gap: unasked
    assert sent[4] in node.gap_lookups and [t.item for t in node.sends].count(4) == 2  # the gap: looked up and sent again
    assert all(r.status == "dropped" for r in ran.rows())  # nothing is mined here


def test_a_lost_actor_s_transactions_included_late_after_the_recovery_have_one_row_each():
    # actor A sends 4 of worker 0's 8 items and is lost before any lands (its rows never reached
    # the driver); B takes the worker over from what the node holds, sends the rest, and the
    # node includes everything only once B's deadline has passed, with the watcher behind
    node = FakeNode()
    key = os.urandom(32)
    spec = [WorkerSpec(worker=0, key_index=1, pool=-1, endpoint=URL, actor=0)]
    phase = reveal(8)

    async def run() -> Sender:
        a = Sender("test", "local", CHAIN_ID, Fees.legacy(1), Sending("open", 64, gap_check_s=60))
        a.clients[URL] = node
        await a.add_workers(spec, [key])
        node.sender = a
        node.hold = lambda: True  # nothing lands while A lives
        node.on_receive = lambda tx: a.stop(grace_s=0) if len(node.sends) == 4 else None
        chain = asyncio.create_task(node.run())
        t0 = time.time() + 0.05
        await a.run_phase(phase, Tagged(), t0, 0.2)
        node.on_receive = None

        b = Sender("test", "local", CHAIN_ID, Fees.legacy(1), Sending("open", 64, gap_check_s=60))
        b.clients[URL] = node
        await b.add_workers(spec, [key])  # its nonce: the node's pending count, 4 past the base
        node.sender = b
        node.hold = lambda: not settling(b)
        behind_until_settling(node)(b)
        b.start_background(node.watcher)
        try:
            await b.recover_phase(phase, Tagged(), t0, 0.2, {0: FIRST_NONCE}, {0: WorkerRecord()})
        finally:
            chain.cancel()
            await b.close()
        return b

    b = asyncio.run(run())
    rows = sorted(b.collector.rows, key=lambda r: r.chunk_index)
    assert [(r.chunk_index, r.status, r.recovered) for r in rows] == [(i, "committed", i < 4) for i in range(8)]
    assert len({r.tx_hash for r in rows}) == 8 and all(r.late_s > 0 for r in rows)
    assert len(node.sends) == 8  # what A had sent was found in the pool, not sent again
