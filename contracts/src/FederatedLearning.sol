// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title FederatedLearning — the study's commit/reveal protocol (sections 3.5–3.7).
/// @notice A coordinator opens a round whose members are split into pools of `poolSize`
/// workers (the redundancy). Every member commits to its model, the coordinator closes the
/// commit phase, members reveal their model chunk by chunk, the coordinator closes the reveal
/// phase, and each pool elects the model digest most of its valid reveals agree on.
///
/// Digests. The study's equation (2) assumes H(H(M1)|M2) = H(M1|M2), which is false for a
/// real hash, so the commitment is defined as what the contract can actually recompute:
///   acc_0 = 0x00…00,  acc_i = keccak256(acc_{i-1} ‖ chunk_i)   (chunk_i: its uint256 words, packed)
///   digest = acc_n,   commitment = keccak256(digest ‖ worker address (20 bytes))
/// `loadgen.model` computes the same in Python. Binding the commitment to the sender's
/// address is what stops a worker from re-committing someone else's revealed model.
///
/// The commit phase closes by a coordinator call (not a block deadline) so that a load run
/// decides when the reveal starts from what it observed, and a slow chain cannot make the
/// protocol skip honest late commits. The chain may run at gas price 0, so rewards are an
/// accounting balance inside the contract, not ether.
contract FederatedLearning {
    enum Phase {
        None,
        Commit,
        Reveal,
        Closed
    }

    enum RevealState {
        None,
        InProgress,
        Valid,
        Invalid
    }

    struct Round {
        address coordinator;
        Phase phase;
        uint32 numChunks;
        uint32 poolSize;
        uint32 numPools;
        uint256 reward;
    }

    struct Entry {
        uint32 pool; // pool index + 1; 0 means "not a member"
        uint32 nextChunk;
        RevealState state;
        bool electionDone;
        bytes32 commitment;
        bytes32 acc;
    }

    uint256 public roundCount;
    mapping(uint256 => Round) public rounds;
    mapping(uint256 => mapping(address => Entry)) public entries;
    mapping(uint256 => mapping(uint256 => address[])) internal poolMembers;
    mapping(uint256 => mapping(uint256 => bool)) public poolElected;
    mapping(uint256 => mapping(uint256 => bytes32)) public electedDigest;
    mapping(address => uint256) public rewardOf;

    event RoundOpened(uint256 indexed roundId, address indexed coordinator, uint32 numChunks, uint32 poolSize, uint32 numPools);
    event Committed(uint256 indexed roundId, address indexed worker, bytes32 commitment);
    event CommitPhaseClosed(uint256 indexed roundId);
    /// One per chunk: the chunk itself is in the transaction's calldata, so the model can be
    /// rebuilt off-chain from these transactions; `acc` lets a reader check it as it goes.
    event ChunkRevealed(uint256 indexed roundId, address indexed worker, uint256 index, bytes32 acc);
    event RevealVerified(uint256 indexed roundId, address indexed worker, bytes32 digest, bool valid);
    event RevealPhaseClosed(uint256 indexed roundId);
    event ModelElected(uint256 indexed roundId, uint256 indexed pool, bytes32 digest, uint256 votes);
    event RewardCredited(uint256 indexed roundId, address indexed worker, uint256 amount);
    event RewardWithdrawn(address indexed worker, uint256 amount);

    error InvalidRoundShape(uint256 members, uint256 poolSize, uint256 numChunks);
    error DuplicateMember(address worker);
    error UnknownRound(uint256 roundId);
    error NotCoordinator(address caller);
    error NotPoolMember(address caller);
    error CommitPhaseOver(uint256 roundId);
    error AlreadyCommitted(address worker);
    error RevealNotOpen(uint256 roundId);
    error NotCommitted(address worker);
    error AlreadyRevealed(address worker);
    error ChunkOutOfOrder(uint256 expected, uint256 got);
    error EmptyChunk();
    error WrongPhase(uint256 roundId, Phase expected, Phase actual);
    error UnknownPool(uint256 pool);
    error PoolAlreadyElected(uint256 pool);
    error NothingToWithdraw(address worker);

    /// Opens a round. `members` lists the pools back to back: pool p is
    /// members[p*poolSize : (p+1)*poolSize]. `reward` is credited to each worker whose
    /// valid reveal matches its pool's elected model.
    function openRound(uint32 numChunks, uint32 poolSize, address[] calldata members, uint256 reward)
        external
        returns (uint256 roundId)
    {
        if (poolSize == 0 || numChunks == 0 || members.length == 0 || members.length % poolSize != 0) {
            revert InvalidRoundShape(members.length, poolSize, numChunks);
        }
        roundId = ++roundCount;
        uint32 numPools = uint32(members.length / poolSize);
        rounds[roundId] = Round(msg.sender, Phase.Commit, numChunks, poolSize, numPools, reward);
        for (uint256 i = 0; i < members.length; i++) {
            Entry storage e = entries[roundId][members[i]];
            if (e.pool != 0) revert DuplicateMember(members[i]);
            uint32 pool = uint32(i / poolSize);
            e.pool = pool + 1;
            poolMembers[roundId][pool].push(members[i]);
        }
        emit RoundOpened(roundId, msg.sender, numChunks, poolSize, numPools);
    }

    function commit(uint256 roundId, bytes32 commitment) external {
        Round storage r = _round(roundId);
        if (r.phase != Phase.Commit) revert CommitPhaseOver(roundId);
        Entry storage e = entries[roundId][msg.sender];
        if (e.pool == 0) revert NotPoolMember(msg.sender);
        if (e.commitment != bytes32(0)) revert AlreadyCommitted(msg.sender);
        e.commitment = commitment;
        emit Committed(roundId, msg.sender, commitment);
    }

    function closeCommitPhase(uint256 roundId) external {
        Round storage r = _coordinated(roundId, Phase.Commit);
        r.phase = Phase.Reveal;
        emit CommitPhaseClosed(roundId);
    }

    function revealChunk(uint256 roundId, uint256 index, uint256[] calldata chunk) external {
        Round storage r = _round(roundId);
        if (r.phase != Phase.Reveal) revert RevealNotOpen(roundId);
        Entry storage e = entries[roundId][msg.sender];
        if (e.pool == 0) revert NotPoolMember(msg.sender);
        if (e.commitment == bytes32(0)) revert NotCommitted(msg.sender);
        if (e.state == RevealState.Valid || e.state == RevealState.Invalid) revert AlreadyRevealed(msg.sender);
        if (index != e.nextChunk) revert ChunkOutOfOrder(e.nextChunk, index);
        if (chunk.length == 0) revert EmptyChunk();

        bytes32 acc = keccak256(abi.encodePacked(e.acc, chunk));
        e.acc = acc;
        e.nextChunk = uint32(index + 1);
        emit ChunkRevealed(roundId, msg.sender, index, acc);

        if (index + 1 < r.numChunks) {
            e.state = RevealState.InProgress;
            return;
        }
        // A mismatch does not revert: the reveal is final and recorded as invalid, so a
        // worker cannot probe the contract with candidate last chunks.
        bool valid = keccak256(abi.encodePacked(acc, msg.sender)) == e.commitment;
        e.state = valid ? RevealState.Valid : RevealState.Invalid;
        emit RevealVerified(roundId, msg.sender, acc, valid);
    }

    function closeRevealPhase(uint256 roundId) external {
        Round storage r = _coordinated(roundId, Phase.Reveal);
        r.phase = Phase.Closed;
        emit RevealPhaseClosed(roundId);
    }

    /// Elects pool `pool`'s model once the reveal phase is closed; anyone may call it.
    /// The winner is the digest with the most valid reveals; ties go to the numerically
    /// smallest digest, so the result does not depend on the order reveals were mined in.
    /// A pool with no valid reveal elects nothing (digest 0, votes 0).
    function elect(uint256 roundId, uint256 pool) external returns (bytes32 winner, uint256 votes) {
        Round storage r = _round(roundId);
        if (r.phase != Phase.Closed) revert WrongPhase(roundId, Phase.Closed, r.phase);
        if (pool >= r.numPools) revert UnknownPool(pool);
        if (poolElected[roundId][pool]) revert PoolAlreadyElected(pool);
        poolElected[roundId][pool] = true;

        address[] storage members = poolMembers[roundId][pool];
        uint256 n = members.length;
        bytes32[] memory digests = new bytes32[](n);
        for (uint256 i = 0; i < n; i++) {
            Entry storage e = entries[roundId][members[i]];
            if (e.state == RevealState.Valid) digests[i] = e.acc;
        }
        for (uint256 i = 0; i < n; i++) {
            bytes32 d = digests[i];
            if (d == bytes32(0)) continue;
            uint256 count = 0;
            for (uint256 j = 0; j < n; j++) {
                if (digests[j] == d) count++;
            }
            if (count > votes || (count == votes && uint256(d) < uint256(winner))) {
                winner = d;
                votes = count;
            }
        }
        electedDigest[roundId][pool] = winner;
        emit ModelElected(roundId, pool, winner, votes);
        if (votes == 0) return (winner, votes);
        for (uint256 i = 0; i < n; i++) {
            if (digests[i] == winner) {
                rewardOf[members[i]] += r.reward;
                emit RewardCredited(roundId, members[i], r.reward);
            }
        }
    }

    /// Zeroes the caller's reward balance; the event is the receipt an off-chain payer acts on.
    function withdrawReward() external returns (uint256 amount) {
        amount = rewardOf[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        rewardOf[msg.sender] = 0;
        emit RewardWithdrawn(msg.sender, amount);
    }

    function membersOf(uint256 roundId, uint256 pool) external view returns (address[] memory) {
        return poolMembers[roundId][pool];
    }

    function revealStateOf(uint256 roundId, address worker) external view returns (RevealState) {
        return entries[roundId][worker].state;
    }

    function _round(uint256 roundId) private view returns (Round storage r) {
        r = rounds[roundId];
        if (r.phase == Phase.None) revert UnknownRound(roundId);
    }

    function _coordinated(uint256 roundId, Phase expected) private view returns (Round storage r) {
        r = _round(roundId);
        if (msg.sender != r.coordinator) revert NotCoordinator(msg.sender);
        if (r.phase != expected) revert WrongPhase(roundId, expected, r.phase);
    }
}
