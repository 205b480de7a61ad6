// Compiler settings shared by build.mjs (the project's contracts) and compile.mjs (a user's
// source at run time), so that both give the same bytecode for the same source.

// berlin: GoQuorum v24.4.1 (geth 1.10.3) runs the Berlin EVM: no PUSH0, no BASEFEE.
export const settings = {
  evmVersion: "berlin",
  optimizer: { enabled: true, runs: 200 },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

// One contract of solc's output as the artifact file contracts/artifacts/<Name>.json holds.
export function artifact(solc, file, name, c) {
  return {
    contractName: name,
    sourceName: file,
    compiler: solc.version(),
    settings: { evmVersion: settings.evmVersion, optimizer: settings.optimizer },
    abi: c.abi,
    bytecode: "0x" + c.evm.bytecode.object,
    deployedBytecode: "0x" + c.evm.deployedBytecode.object,
  };
}
