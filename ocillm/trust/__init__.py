"""Supply chain: cosign-compatible signatures, OCI 1.1 referrers, and the trust policy.

``keys`` reads and writes ECDSA P-256 PEM keys; ``simplesigning`` makes and checks cosign's
"simple signing" payloads; ``artifacts`` shapes the manifests that carry signatures and attached
files; ``local`` keeps referrers in the store; ``remote`` finds and pushes them on a registry
(the referrers API, else the tag schema); ``verify`` decides; ``policy`` says when it must.
"""
