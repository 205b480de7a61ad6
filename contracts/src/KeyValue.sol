// SPDX-License-Identifier: MIT
pragma solidity ^0.8.4;

/// @title KeyValue — byte payloads of a chosen size, for the contract-call workload.
/// @notice Storing N bytes costs gas in proportion to N (one 32-byte slot per 32 bytes,
/// plus the length), so sweeping the payload size moves a call from cheap to block-filling,
/// like ArrayCopy does with uint256 arrays, but with a key a worker chooses: distinct keys
/// write fresh slots (the expensive zero-to-nonzero case), a reused key overwrites.
contract KeyValue {
    /// @notice Private with an explicit `get`: a public mapping of `bytes` would make the same
    /// getter, but naming it keeps the workload's call independent of the storage layout.
    mapping(bytes32 => bytes) private values;

    /// @notice Total successful `put`s: a run can compare it with the puts its receipts say
    /// committed.
    uint256 public writes;

    function put(bytes32 key, bytes calldata value) external {
        values[key] = value;
        writes += 1;
    }

    function get(bytes32 key) external view returns (bytes memory) {
        return values[key];
    }
}
