"""Media types and annotation keys ocillm writes and reads (see docs/formats.md)."""

from __future__ import annotations

# Manifests and indexes.
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"  # uncompressed: digest == diff_id
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
# Sent on every manifest GET: Distribution answers 404 to a Docker-only Accept for OCI manifests.
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST))

# CNCF ModelPack (the default format).
MODELPACK_ARTIFACT = "application/vnd.cncf.model.manifest.v1+json"
MODELPACK_CONFIG = "application/vnd.cncf.model.config.v1+json"
MODELPACK_WEIGHT = "application/vnd.cncf.model.weight.v1.raw"
MODELPACK_WEIGHT_CONFIG = "application/vnd.cncf.model.weight.config.v1.raw"
MODELPACK_DOC = "application/vnd.cncf.model.doc.v1.raw"
# Legacy DMR spelling of a GGUF weight inside a ModelPack manifest (read only).
MODELPACK_WEIGHT_GGUF = "application/vnd.cncf.model.weight.v1.gguf"

# Ollama's registry format.
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OLLAMA_PREFIX = "application/vnd.ollama.image."
OLLAMA_MODEL = OLLAMA_PREFIX + "model"
OLLAMA_ADAPTER = OLLAMA_PREFIX + "adapter"
OLLAMA_PROJECTOR = OLLAMA_PREFIX + "projector"
OLLAMA_DRAFT = OLLAMA_PREFIX + "draft"
OLLAMA_TEMPLATE = OLLAMA_PREFIX + "template"
OLLAMA_PROMPT = OLLAMA_PREFIX + "prompt"  # legacy name of the template layer
OLLAMA_SYSTEM = OLLAMA_PREFIX + "system"
OLLAMA_PARAMS = OLLAMA_PREFIX + "params"
OLLAMA_MESSAGES = OLLAMA_PREFIX + "messages"
OLLAMA_LICENSE = OLLAMA_PREFIX + "license"

# Docker Model Runner (read only).
DMR_CONFIG_V01 = "application/vnd.docker.ai.model.config.v0.1+json"
DMR_CONFIG_V02 = "application/vnd.docker.ai.model.config.v0.2+json"
DMR_GGUF = "application/vnd.docker.ai.gguf.v3"
DMR_LICENSE = "application/vnd.docker.ai.license"
DMR_MMPROJ = "application/vnd.docker.ai.mmproj"
DMR_CHAT_TEMPLATE = "application/vnd.docker.ai.chat.template.jinja"

# Plain ORAS artifacts.
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

# Annotations.
ANN_REF_NAME = "org.opencontainers.image.ref.name"
ANN_TITLE = "org.opencontainers.image.title"
ANN_CREATED = "org.opencontainers.image.created"
ANN_FILEPATH = "org.cncf.model.filepath"
ANN_UNTESTED = "org.cncf.model.file.mediatype.untested"
ANN_ROLE = "io.ocillm.role"  # which Modelfile piece a layer carries
ANN_MODIFIED = "io.ocillm.modified"  # index.json only: when this tag last changed
