"""The local Schema Registry: Apicurio Registry 3 (Quarkus, ``java -jar quarkus-run.jar``) from Maven Central.

Its SQL storage is an H2 database file in the stack home (``registry/registry.mv.db``), so the
schemas registered survive ``stack down`` / ``up``. Every command talks to its
Confluent-compatible API (``/apis/ccompat/v7``); an external registry (Confluent, Karapace,
Redpanda) replaces it with ``STREAMSCORE_SCHEMA_REGISTRY_MODE=external``.
"""

from __future__ import annotations

from jobs import jars
from streamscore.foundation.config import Address, Settings
from streamscore.foundation.errors import RegistryError, StackError
from streamscore.stack.java import registry_java
from streamscore.stack.process import ProcessSpec, port_open


class RegistryService:
    name = "registry"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.dir = settings.home / "registry"
        self.log_file = settings.log_dir / "registry.log"

    @property
    def address(self) -> Address:
        return self.settings.registry

    def ports(self) -> list[int]:
        return [self.address.port, self.address.port + 1]  # the API, the management interface

    def prepare(self) -> list[ProcessSpec]:
        registry = self.settings.schema_registry
        if registry.username:
            raise StackError("registry: the local Apicurio serves without authentication; for basic auth point "
                             "STREAMSCORE_SCHEMA_REGISTRY_URL at your registry with "
                             "STREAMSCORE_SCHEMA_REGISTRY_MODE=external")
        java = registry_java(registry.java)
        app = jars.fetch_archive(self.settings.cache_dir, f"apicurio-registry-{registry.version}",
                                 jars.apicurio_registry_artifact(registry.version))
        self.dir.mkdir(parents=True, exist_ok=True)
        return [ProcessSpec(self.name, [java, *self.java_options(), "-jar", str(app / "quarkus-run.jar")],
                            self.log_file, self.settings.run_dir / "registry.pid", cwd=self.dir)]

    def java_options(self) -> list[str]:
        registry = self.settings.schema_registry
        options = {
            "quarkus.http.host": self.address.host,
            "quarkus.http.port": self.address.port,
            "quarkus.http.access-log.enabled": "false",
            "quarkus.management.port": self.address.port + 1,  # health and metrics (default 9000)
            "quarkus.management.host": self.address.host,
            "apicurio.storage.kind": "sql",
            "apicurio.storage.sql.kind": "h2",
            "apicurio.datasource.url": f"jdbc:h2:file:{self.dir / 'registry'}",
            # a handful of connections: the default pool of 20 costs memory and start-up
            "apicurio.datasource.jdbc.initial-size": 2,
            "apicurio.datasource.jdbc.min-size": 2,
            "apicurio.datasource.jdbc.max-size": 10,
            "apicurio.storage.snapshot.location": self.dir,
        }
        return [f"-Xmx{registry.heap}", f"-Xms{registry.heap}", *(f"-D{k}={v}" for k, v in options.items())]

    def probe(self) -> tuple[bool, str]:
        if not port_open(self.address.host, self.address.port):
            return False, "port closed"
        from connectors.schema_registry import SchemaRegistry

        try:
            subjects = SchemaRegistry(self.settings.schema_registry, timeout_s=3).subjects()
        except RegistryError as exc:
            return False, str(exc)
        return True, f"{len(subjects)} subject(s) at {self.settings.schema_registry.url}"
