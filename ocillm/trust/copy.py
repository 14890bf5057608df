"""Bring an image's referrers from a registry into the store (``pull --with-referrers``, and the
signatures a policy check verified, so ``serve`` can check them again offline)."""

from __future__ import annotations

from dataclasses import dataclass

from ocillm.progress import silent
from ocillm.registry.client import RegistryClient
from ocillm.registry.download import DownloadStats, fetch_blob
from ocillm.registry.progress import Progress
from ocillm.store import Store
from ocillm.trust import local, remote
from ocillm.trust.artifacts import SIGNATURE_ARTIFACT, artifact_type_of, cosign_tag


@dataclass(frozen=True)
class Copied:
    digest: str
    artifact_type: str


def copy_referrers(
    client: RegistryClient, store: Store, subject: str, *, signatures_only: bool = False
) -> list[Copied]:
    """Fetch (verified) every referrer of ``subject`` and cosign's ``.sig`` manifest; keep them."""
    targets = [cosign_tag(subject)]
    listed, _how = remote.list_referrers(client, subject)
    for desc in listed:
        if not signatures_only or desc.artifact_type == SIGNATURE_ARTIFACT:
            targets.append(desc.digest)
    progress = Progress(silent)
    stats = DownloadStats()
    copied = []
    with store.writing():
        for target in targets:
            found = remote.fetch_manifest(client, target)
            if found is None:
                continue
            raw, manifest = found
            for blob in (manifest.config, *manifest.layers):
                bar = progress.blob("pulling", blob.digest, blob.size)
                fetch_blob(client, store, blob, client.options, bar, stats)
            entry = local.keep(store, raw, subject)
            copied.append(Copied(entry.digest, artifact_type_of(manifest)))
    return copied
