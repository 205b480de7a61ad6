// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title ArrayCopy — the study's transaction-size experiment (section 4.1).
/// @notice Copies a uint256[] into storage. Storage writes make gas grow with the array,
/// so past some size a call runs out of gas and its receipt has status 0: the study's tool
/// counted those as committed; loadgen counts them as reverted.
contract ArrayCopy {
    uint256[] public stored;

    event Copied(address indexed sender, uint256 length);

    function copy(uint256[] calldata values) external {
        stored = values;
        emit Copied(msg.sender, values.length);
    }

    function storedLength() external view returns (uint256) {
        return stored.length;
    }
}
