"""The experiment file: YAML in, a validated ``Experiment`` out, or one clear error.

Every mistake becomes a ``ConfigError`` naming the field and the fix, which the CLI prints as one
line with exit code 2. ``--set a.b=value`` overrides are applied to the YAML before validation,
so they are checked exactly like the file.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from loadgen.chains.consensus import CLIENT_CONSENSUS, CONSENSUS
from loadgen.chains.devnet import DEFAULT_BLOCK_GAS_LIMIT, DEFAULT_CHAIN_ID
from loadgen.chains.fees import TxType
from loadgen.chains.gethnet import (
    DEFAULT_GETH_BLOCK_GAS_LIMIT,
    DEFAULT_GOQUORUM_BLOCK_GAS_LIMIT,
    TXPOOL_DEFAULTS,
    TxpoolSettings,
)
from loadgen.common.errors import ConfigError, UserError
from loadgen.config.strict import Strict, is_model, members_of, tag_of
from loadgen.engine.plan import RunPlan, assign_workers
from loadgen.engine.sending import Sending
from loadgen.workloads import WORKLOADS, WorkloadConfig, load_plugins, workload_of
from loadgen.workloads import Workload as WorkloadPlugin


class TxpoolConfig(Strict):
    """geth's --txpool.* limits (defaults are geth's and GoQuorum's), to make them bind at this machine's rates."""

    account_slots: int = Field(TXPOOL_DEFAULTS["account_slots"], gt=0, description="executable transactions kept per account")
    global_slots: int = Field(TXPOOL_DEFAULTS["global_slots"], gt=0, description="executable transaction slots (32 kB each) per node")
    account_queue: int = Field(TXPOOL_DEFAULTS["account_queue"], gt=0, description="non-executable (future nonce) transactions per account")
    global_queue: int = Field(TXPOOL_DEFAULTS["global_queue"], gt=0, description="non-executable transactions per node")
    lifetime_s: int = Field(TXPOOL_DEFAULTS["lifetime_s"], gt=0, description="how long a queued transaction is kept")
    no_locals: bool = Field(False, description="apply the limits to what a node's own RPC received too")

    def settings(self) -> TxpoolSettings:
        return TxpoolSettings(**self.model_dump())


class DevnetConfig(Strict):
    """The embedded chain started when ``chain.endpoints`` is empty."""

    client: Literal["anvil", "geth", "goquorum"] = Field(
        "anvil", description="anvil: one fast node; geth: a multi-node clique network; goquorum: QBFT or raft ($LOADGEN_GOQUORUM)"
    )
    nodes: int = Field(4, gt=0, le=32, description="geth, goquorum: nodes of the network")
    observers: int = Field(
        0, ge=0, le=8, description="geth, goquorum qbft or ibft: nodes that follow without sealing; the watchers read from them"
    )
    consensus: Literal["clique", "qbft", "ibft", "raft"] | None = Field(
        None, description="geth: clique; goquorum: qbft (default), ibft (the study's) or raft"
    )
    block_time_s: float | None = Field(None, gt=0, description="1 s; raft: 0.05 s (its minting interval)")
    block_gas_limit: int | None = Field(None, gt=21_000, description="anvil: 1,000,000,000; geth: 100,000,000; goquorum: 700,000,000")
    chain_id: int = Field(DEFAULT_CHAIN_ID, gt=0, description="the embedded chain's id")
    gas_price: int | None = Field(None, ge=0, description="anvil, goquorum: 0; geth: 1 wei (its pools refuse less)")
    txpool: TxpoolConfig = TxpoolConfig()
    data_dir: str | None = Field(None, description="geth, goquorum: keep the nodes' data here instead of a temporary directory")

    @model_validator(mode="after")
    def _fits_the_client(self) -> DevnetConfig:
        if self.client == "anvil":
            # compared with the defaults, not "was it written": a resolved config (manifest,
            # search state) carries every field
            for name, unset in (("txpool", TxpoolConfig()), ("data_dir", None), ("consensus", None), ("observers", 0)):
                if getattr(self, name) != unset:
                    raise ConfigError(f"chain.devnet.{name}", "Anvil has no such setting", "remove it, or use client: geth")
            return self
        allowed = CLIENT_CONSENSUS[self.client]
        if self.consensus is not None and self.consensus not in allowed:
            raise ConfigError("chain.devnet.consensus", f"{self.client} runs {' or '.join(allowed)}", f"use consensus: {allowed[0]}")
        consensus = CONSENSUS[self.consensus or allowed[0]]
        if self.observers and not consensus.observable:
            raise ConfigError("chain.devnet.observers", f"a {consensus.name} network has no observer nodes here", "use 0")
        if consensus.name != "raft" and self.block_time_s is not None and self.block_time_s != int(self.block_time_s):
            period = f"{consensus.name}'s block period is whole seconds (got {self.block_time_s:g})"
            raise ConfigError("chain.devnet.block_time_s", period, "use 1, 2, …")
        if self.gas_price is not None and self.gas_price != consensus.gas_price and consensus.client == "goquorum":
            raise ConfigError("chain.devnet.gas_price", "a gas-free GoQuorum network takes only gas price 0", "use 0")
        if self.gas_price is not None and self.gas_price < consensus.gas_price:
            raise ConfigError("chain.devnet.gas_price", "a geth mining node refuses transactions below 1 wei", "use 1 or more")
        return self

    @property
    def block_gas(self) -> int:
        """The block gas limit the network has: the one set, else its client's default."""
        if self.block_gas_limit is not None:
            return self.block_gas_limit
        if self.client == "anvil":
            return DEFAULT_BLOCK_GAS_LIMIT
        return DEFAULT_GOQUORUM_BLOCK_GAS_LIMIT if self.client == "goquorum" else DEFAULT_GETH_BLOCK_GAS_LIMIT


CLIQUE_CONFIRMATIONS = 3  # the deepest fork seen under the watcher on a 4-signer clique network at 3x its capacity was 2


class ChainConfig(Strict):
    endpoints: list[str] = Field(
        default_factory=list,
        description="RPC URLs (HTTP) of the network's nodes, the workers spread over them round robin; "
        "empty: the embedded network chain.devnet describes, started for the run",
    )
    watch_endpoints: list[str] = Field(
        default_factory=list,
        description="where the block watchers and the gap checks read, so that observing costs the sending nodes nothing; "
        "none: the embedded network's observers, else the endpoints",
    )
    chain_id: int | None = Field(None, gt=0, description="probed from the node when absent")
    gas_price: int | None = Field(None, ge=0, description="probed from the node when absent (GoQuorum: 0)")
    gas_limit: int | None = Field(None, gt=21_000, description="gas limit of each worker transaction; sized per kind when absent")
    tx_type: TxType = Field("legacy", description="legacy (GoQuorum's, the default) or eip1559 (type 2: geth, Besu, Anvil)")
    max_fee: int | None = Field(None, ge=0, description="eip1559: max fee per gas; from eth_feeHistory when absent")
    priority_fee: int | None = Field(None, ge=0, description="eip1559: priority fee per gas; from eth_feeHistory when absent")
    confirmations: int | None = Field(
        None,
        ge=0,
        le=64,
        description=f"blocks on top of a block before its transactions are read as included; "
        f"none: 0, or {CLIQUE_CONFIRMATIONS} on a clique network (its signers fork under load)",
    )
    devnet: DevnetConfig = DevnetConfig()

    @field_validator("endpoints", "watch_endpoints")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an HTTP(S) URL such as http://10.0.0.5:8545")
        return urls


def _workload_union() -> Any:
    """The experiment file's ``workload:``: one of the registered workloads' config models."""
    models = tuple(cls.config_model for _, cls in sorted(WORKLOADS.items()))  # the kinds in order, in every message
    return Annotated[Union[models], Field(discriminator="kind")]  # noqa: UP007  (a runtime tuple of models)


Workload = _workload_union()


class RunConfig(Strict):
    commit_timeout_s: float = Field(60.0, gt=0, description="after the last send, how long a transaction may take to be included")
    threshold: float = Field(0.85, ge=0, le=1, description="commit ratio the run must reach")
    hosting: Literal["auto", "ray", "process"] = Field(
        "auto",
        description="where the sender actors run: ray (actors on a Ray cluster, a private local one unless --ray-address), "
        "process (loadgen's own process, no Ray: one core) or auto (process for a single run that needs one sender actor "
        "and names no cluster, else ray)",
    )
    actors: int | None = Field(None, gt=0, description="sender actors; one per CPU of the cluster when absent (one in process hosting)")
    spare_actors: int = Field(
        1,
        ge=0,
        description="sender processes kept started on each Ray node the run uses: a lost actor's successor takes one "
        "at once instead of starting a process (seconds, tens on a busy machine); 0 saves their start-up CPU",
    )
    lead_time_s: float = Field(0.3, ge=0, description="time between the start signal and the first slot (after signing ahead)")
    max_lag_s: float | None = Field(
        None,
        gt=0,
        description="schedule lag p99 over which the run is INVALID (its load left later than planned); absent: 0.1 s or a "
        "quarter of a worker's interval, whichever is longer. Loosen it only where other work shares the machine: the "
        "summary says the bound it used",
    )
    gap_check_s: float = Field(3.0, gt=0, description="age after which an accepted transaction not yet in a block is looked up")
    seed: int = Field(0, description="seeds the models and the random arguments: the same seed, the same transactions")
    send_mode: Literal["open", "closed"] = Field(
        "open", description="open: each transaction at its slot, answered or not; closed: a worker waits for each answer"
    )
    max_unanswered: int = Field(
        64,
        gt=0,
        description="open mode: a worker's sends awaiting the node's answer before its next slot waits (geth queues 64 per account)",
    )
    failover: bool = Field(
        True, description="a worker whose endpoint is down sends through another; off: it stays, and its refusals are recorded"
    )
    failover_after: int = Field(
        3, gt=0, description="unhealthy answers in a row (no connection, timeout, HTTP 429/5xx, not JSON) that make an endpoint down"
    )
    key_offset: int = Field(
        0, ge=0, description="worker i signs with key 1 + key_offset + i; searches and sweeps move it on for every trial"
    )

    @property
    def sending(self) -> Sending:
        return Sending(self.send_mode, self.max_unanswered, self.failover, self.failover_after, self.gap_check_s)


class Experiment(Strict):
    name: str = Field("experiment", description="part of the run id (runs/<time>-<name>-<suffix>)")
    chain: ChainConfig = ChainConfig()
    if TYPE_CHECKING:
        # statically, what every registered config is; pydantic validates against their union
        workload: WorkloadConfig
    else:
        workload: Workload
    run: RunConfig = RunConfig()

    @model_validator(mode="after")
    def _fees_fit_the_type(self) -> Experiment:
        chain = self.chain
        if chain.tx_type == "legacy" and (chain.max_fee is not None or chain.priority_fee is not None):
            raise ConfigError("chain.max_fee", "fee caps belong to eip1559 transactions", "remove them, or set chain.tx_type: eip1559")
        if chain.tx_type == "eip1559" and chain.gas_price is not None:
            raise ConfigError("chain.gas_price", "an eip1559 transaction has no gas price", "use chain.max_fee and chain.priority_fee")
        if chain.max_fee is not None and chain.priority_fee is not None and chain.priority_fee > chain.max_fee:
            raise ConfigError("chain.priority_fee", "is above chain.max_fee", "lower it, or raise max_fee")
        return self

    @property
    def plugin(self) -> WorkloadPlugin:
        """The workload this experiment plays (a fresh instance: it may cache compiled artifacts)."""
        return workload_of(self.workload)

    def plan(self, endpoints: list[str], n_actors: int) -> RunPlan:
        """Who sends what and when, before anything runs: workers spread over the endpoints and
        actors, and the workload's phases."""
        workload = self.plugin
        workers = assign_workers(workload.workers, workload.pool_size, endpoints, n_actors, self.run.key_offset)
        return RunPlan(workers, workload.phases(self.chain.gas_limit, self.run.seed), workload.epochs)

    def with_overrides(self, overrides: dict[str, Any]) -> Experiment:
        """This experiment with dotted keys replaced, validated again like the file."""
        return from_dict(to_public_dict(self), overrides)


_FIXES = {
    "extra_forbidden": "remove it or fix its spelling",
    "missing": "add it",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than_equal": "use a smaller value",
    "int_parsing": "write a whole number",
    "int_from_float": "write a whole number",
    "float_parsing": "write a number",
    "bool_parsing": "write true or false",
    "list_type": "write a list, e.g. [http://127.0.0.1:8545]",
    "model_type": "write a mapping of keys",
    "literal_error": "use one of the values listed",
}


def _user_path(loc: tuple, raw: Any) -> list[str]:
    """The error's location as the user wrote it. pydantic puts a tagged union's member in the
    location (workload.fl-round.pace_s, call.args.0.random_uint.bits): that part is the value of
    the tag key in the input at that point, followed by one of the input's keys or by nothing
    (an error of the member as a whole), so it goes."""
    kept, node, tag_seen = [], raw, False
    for i, part in enumerate(loc):
        following = loc[i + 1] if i + 1 < len(loc) else None
        tag = isinstance(node, dict) and part in node.values() and (part not in node or following is None or following in node)
        if tag and not tag_seen:  # one member per mapping: a later part equal to it is a key
            tag_seen = True
            continue
        tag_seen = False
        kept.append(str(part))
        node = node[part] if (isinstance(node, dict) and part in node) or (isinstance(node, list) and isinstance(part, int)) else None
    return kept


def _keys_beside(loc: list[str], raw: Any) -> list[str]:
    """The keys the section holding ``loc``'s last part takes (a tagged union's member by its
    tag in the input: a workload's by its kind)."""
    model: Any = _current()
    node = raw
    for part in loc[:-1]:
        field = model.model_fields.get(part) if is_model(model) else None
        if field is None:
            return []
        node = node.get(part) if isinstance(node, dict) else None
        models = [m for m in members_of(field.annotation) if is_model(m)]
        if len(models) > 1 and isinstance(node, dict):
            models = [m for m in models if (tag := tag_of(m)) is not None and node.get(tag[0]) == tag[1]]
        if len(models) != 1:
            return []
        model = models[0]
    return list(model.model_fields) if is_model(model) else []


def _to_config_error(error: ValidationError, raw: Any) -> ConfigError:
    errors = error.errors(include_url=False)
    # a misspelt key also makes its real name "missing": the unknown key is the one to report
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = _user_path(first["loc"], raw)
    field = ".".join(loc) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
        near = difflib.get_close_matches(loc[-1], _keys_beside(loc, raw), n=1, cutoff=0.6) if loc else []
        if near:
            return ConfigError(field, message, f"did you mean {'.'.join([*loc[:-1], near[0]])}?")
    elif first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        # the tag's own key (kind, shape, gen) is the one to name, with the values it takes
        tag = first.get("ctx", {}).get("discriminator", "'kind'").strip("'")
        field += f".{tag}"
        expected = first.get("ctx", {}).get("expected_tags") or ", ".join(WORKLOADS)
        value = first["input"].get(tag) if isinstance(first["input"], dict) else None
        noun = "workload kind" if tag == "kind" else tag
        message = f"unknown {noun} {value!r}" if value is not None else "missing"
        fix = f"use one of: {expected}" if value is not None else f"add `{tag}:` (one of: {expected})"
        return ConfigError(field, message, fix.replace("'", ""))
    elif first["type"] != "missing" and "input" in first and not isinstance(first["input"], dict):
        message += f" (got {first['input']!r})"
    return ConfigError(field, message, _FIXES.get(first["type"], ""))


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(pair, "an override is written KEY=VALUE", "e.g. --set workload.pace_s=0.25")
        try:
            overrides[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            overrides[key.strip()] = raw
    return overrides


def _apply(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(".".join(parents[: i + 1]), "is a value, not a section", f"cannot set {dotted}")
            node = child
        node[leaf] = value
    return raw


def _current() -> type[Experiment]:
    """Experiment, rebuilt when a workload registered after this module was imported."""
    global Workload, _KINDS
    if set(WORKLOADS) != _KINDS:
        Workload = _workload_union()
        _KINDS = set(WORKLOADS)
        # the field was resolved when the class was built: give it the new union, then rebuild
        field = Experiment.model_fields["workload"]
        union: Any = Union[tuple(cls.config_model for _, cls in sorted(WORKLOADS.items()))]  # noqa: UP007  (the kinds in order)
        field.annotation, field.discriminator = union, "kind"
        Experiment.model_rebuild(force=True)
    return Experiment


_KINDS = set(WORKLOADS)


def from_dict(raw: Any, overrides: dict[str, Any] | None = None) -> Experiment:
    if not isinstance(raw, dict):
        raise ConfigError("(top level)", "the experiment file must be a YAML mapping", "see configs/quickstart.yaml")
    data = _apply(copy.deepcopy(raw), overrides or {})
    section = data.get("workload")
    if not isinstance(section, dict) or not isinstance(section.get("kind"), str) or section["kind"] not in WORKLOADS:
        load_plugins()  # a kind from another package, or a mistake whose message lists every kind
    try:
        return _current().model_validate(data)
    except ValidationError as e:
        raise _to_config_error(e, data) from None


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> Experiment:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"cannot read the experiment file {path} ({e.strerror}) — check the path") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"the experiment file {path} is not valid YAML{where} — fix the syntax") from None
    return from_dict(raw, overrides)


def to_public_dict(experiment: Experiment) -> dict[str, Any]:
    """The resolved config as written to manifest.json (it holds no secret by construction)."""
    return experiment.model_dump(mode="json")
