// SPDX-License-Identifier: MIT
pragma solidity ^0.8.4;

/// @title Counter — the cheapest useful contract call, for the contract-call workload.
/// @notice Every call writes storage, so a committed call leaves an effect a test can count,
/// unlike a view call or a plain value transfer. The global `count` is one slot every worker
/// writes; `countOf` is a slot per caller, so after a run the on-chain total of each worker
/// can be compared with the calls that worker's receipts say committed.
contract Counter {
    uint256 public count;
    mapping(address => uint256) public countOf;

    /// @notice The fixed-cost call: same calldata every time, so gas per call is flat after a
    /// caller's first one (which pays for creating its `countOf` slot).
    function increment() external {
        count += 1;
        countOf[msg.sender] += 1;
    }

    /// @notice Like `increment` but with an argument, so calldata varies per call. Checked
    /// arithmetic is kept on purpose: `add(type(uint256).max)` once `count` > 0 reverts, which
    /// gives a workload a deterministic way to produce a mined, reverted transaction.
    function add(uint256 by) external {
        count += by;
        countOf[msg.sender] += by;
    }
}
