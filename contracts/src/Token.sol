// SPDX-License-Identifier: MIT
pragma solidity ^0.8.4;

/// @title Token — a minimal ERC-20, for the contract-call workload.
/// @notice Token transfers are what most load tests of a chain send, and two balance slots
/// per transfer (sender and recipient) exercise storage the way real traffic does. It is a
/// plain ERC-20 so that explorers and wallets understand it on a test network.
///
/// The constructor takes no arguments because loadgen deploys artifacts as bare bytecode;
/// the initial supply goes to the deployer, who then hands tokens to every worker in one
/// transaction with `mintTo` (a load test's set-up should not cost one transaction per worker).
contract Token {
    string public constant name = "loadgen Token";
    string public constant symbol = "LOAD";
    uint8 public constant decimals = 18;
    uint256 public constant INITIAL_SUPPLY = 1_000_000_000 * 10 ** 18;

    /// @notice Only the deployer may mint: the token's supply should only grow by set-up
    /// calls the driver makes, never by a worker's traffic.
    address public immutable minter;

    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    // Custom errors, like the study's contracts: loadgen decodes them from revert data, and
    // they cost less than revert strings.
    error InsufficientBalance(uint256 available, uint256 required);
    error InsufficientAllowance(uint256 available, uint256 required);
    error NotMinter();

    constructor() {
        minter = msg.sender;
        totalSupply = INITIAL_SUPPLY;
        balanceOf[msg.sender] = INITIAL_SUPPLY;
        emit Transfer(address(0), msg.sender, INITIAL_SUPPLY);
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    /// @notice An allowance of type(uint256).max is never decreased (as in most ERC-20s), so
    /// a worker can approve a spender once and the spender's calls each cost the same.
    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            if (allowed < value) revert InsufficientAllowance(allowed, value);
            unchecked {
                allowance[from][msg.sender] = allowed - value;
            }
        }
        _transfer(from, to, value);
        return true;
    }

    /// @notice Gives `each` new tokens to every address in `to`, in one transaction.
    function mintTo(address[] calldata to, uint256 each) external {
        if (msg.sender != minter) revert NotMinter();
        // checked once here, so the per-recipient additions below cannot overflow: no
        // balance can exceed the total supply
        totalSupply += each * to.length;
        for (uint256 i = 0; i < to.length; i++) {
            unchecked {
                balanceOf[to[i]] += each;
            }
            emit Transfer(address(0), to[i], each);
        }
    }

    /// @dev No zero-address check on `to`: tokens sent there stay counted in `totalSupply`
    /// and in balanceOf(0), so the sum of balances still equals the supply.
    function _transfer(address from, address to, uint256 value) private {
        uint256 available = balanceOf[from];
        if (available < value) revert InsufficientBalance(available, value);
        unchecked {
            // cannot underflow (checked above) nor overflow (bounded by totalSupply)
            balanceOf[from] = available - value;
            balanceOf[to] += value;
        }
        emit Transfer(from, to, value);
    }
}
