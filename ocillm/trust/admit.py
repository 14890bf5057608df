"""The trust policy applied: on ``pull`` and ``build FROM registry/…`` before any blob moves, and
on the store's copy before ``serve`` loads it (so an image copied in by other means is checked).

``enforce`` refuses with one line naming the reference and the reason; ``warn`` says the same
through ``warn`` and goes on; ``off`` reads nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ocillm.oci.reference import Reference
from ocillm.progress import Reporter, silent
from ocillm.registry.client import RegistryClient
from ocillm.registry.options import TransferOptions
from ocillm.registry.pull import PullResult, pull
from ocillm.store import Store
from ocillm.trust.errors import TrustError
from ocillm.trust.policy import Policy, Rule, load_policy
from ocillm.trust.verify import (
    Candidate,
    Verified,
    decide,
    load_keys,
    local_candidates,
    remote_candidates,
)

Warn = Callable[[str], None]


def _judge(
    policy: Policy, rule: Rule, ref: Reference, attempt: Callable[[], Verified], warn: Warn
) -> Verified | None:
    try:
        return attempt()
    except TrustError as e:
        where = f"trust policy {policy.path} ({rule.match}: {rule.mode})"
        if rule.mode == "enforce":
            raise TrustError(str(ref), f"refused by {where}: {e.reason}") from None
        warn(f"{ref}: {e.reason} (allowed by {where})")
        return None


def check_remote(
    policy: Policy, ref: Reference, client: RegistryClient, digest: str, warn: Warn
) -> Verified | None:
    return _check(policy, ref, digest, lambda: remote_candidates(client, digest), warn)


def check_local(
    policy_path: Path, store: Store, ref: Reference, digest: str, warn: Warn
) -> Verified | None:
    """The store's copy of ``ref`` against the policy (read afresh: edits apply at once)."""
    policy = load_policy(policy_path)
    return _check(policy, ref, digest, lambda: local_candidates(store, digest), warn)


def _check(
    policy: Policy,
    ref: Reference,
    digest: str,
    candidates: Callable[[], list[Candidate]],
    warn: Warn,
) -> Verified | None:
    rule = policy.rule_for(ref)
    if rule.mode == "off":
        return None  # neither keys nor signatures are read for an unchecked repository
    keys = load_keys(list(rule.keys))
    return _judge(policy, rule, ref, lambda: decide(str(ref), digest, candidates(), keys), warn)


def pull_checked(
    ref: Reference,
    store: Store,
    *,
    policy_path: Path,
    options: TransferOptions | None = None,
    report: Reporter = silent,
    warn: Warn = lambda _line: None,
    with_referrers: bool = False,
) -> PullResult:
    """``pull`` under the policy; keeps the verified signatures (or, with ``with_referrers``,
    every referrer) in the store so ``serve`` and ``verify --local`` find them offline."""
    from ocillm.trust.copy import copy_referrers

    policy = load_policy(policy_path)
    checked: list[RegistryClient] = []

    def check(client: RegistryClient, digest: str) -> None:
        if check_remote(policy, ref, client, digest, warn) is not None:
            checked.append(client)

    result = pull(ref, store, options=options, report=report, check=check)
    if checked or with_referrers:
        client = RegistryClient(ref, options or TransferOptions(), actions="pull")
        client.authorize()
        copy_referrers(client, store, result.digest, signatures_only=not with_referrers)
    return result
