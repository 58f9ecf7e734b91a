"""The one root exception type of streamscore and its families.

Every error streamscore raises on purpose derives from :class:`StreamscoreError`,
so callers (the CLI above all) can catch one type and print one clear line.
"""


class StreamscoreError(Exception):
    """Root of every error streamscore raises deliberately."""


class ConfigError(StreamscoreError):
    """A setting is missing, malformed or inconsistent."""


class StackError(StreamscoreError):
    """A local-stack service failed to start, stop or answer."""


class SerdeError(StreamscoreError):
    """A payload could not be encoded or decoded."""


class ModelError(StreamscoreError):
    """A model file or model card is missing, corrupt or inconsistent."""


class ContractError(StreamscoreError):
    """A record does not satisfy a model's feature contract."""


class InputError(StreamscoreError):
    """A file, line or value the user gave cannot be used."""


class RegistryError(StreamscoreError):
    """The Schema Registry refused a request, does not know a schema, or cannot be reached."""

    retriable = False


class RegistryUnavailable(RegistryError):
    """No answer from the registry (refused, timed out, 5xx): worth a retry."""

    retriable = True


class SchemaNotFound(RegistryError):
    """An unknown schema id, subject or version (404)."""


class IncompatibleSchema(RegistryError):
    """The subject's compatibility rule refused a new version (409)."""


class RegistryRefused(RegistryError):
    """Any other refusal: a bad schema (422), no access (401/403)."""
