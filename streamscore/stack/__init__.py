"""The local stack: ``up`` (idempotent, waits for health), ``down`` (only what ``up`` started), ``status``, ``logs``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from jobs.flink_home import FlinkHome
from jobs.submitter_client import stop_daemon
from streamscore.foundation.config import Address, Settings
from streamscore.foundation.errors import StackError
from streamscore.stack.process import (
    ProcessSpec,
    kill_processes_with_env,
    port_open,
    running_pid,
    start_process,
    stop_process,
    tail,
    wait_for,
)
from streamscore.stack.prometheus import PrometheusService
from streamscore.stack.registry import RegistryService
from streamscore.stack.services import FlinkService, Health, KafkaService, RedisService


class Service(Protocol):
    name: str
    log_file: object

    @property
    def address(self) -> Address: ...

    def ports(self) -> list[int]: ...

    def prepare(self) -> list[ProcessSpec]: ...

    def probe(self) -> tuple[bool, str]: ...


@dataclass(frozen=True)
class StartReport:
    service: str
    started: bool  # False: it was already running (or is external)
    seconds: float


class Stack:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.services: list[Service] = [KafkaService(settings), RedisService(settings), RegistryService(settings),
                                        FlinkService(settings)]
        if settings.prometheus_mode != "off":  # STREAMSCORE_PROMETHEUS=on|external
            self.services.append(PrometheusService(settings))

    def mode(self, service: Service) -> str:
        return getattr(self.settings, f"{service.name}_mode")  # kafka_mode, registry_mode...

    def service(self, name: str) -> Service:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise StackError(f"unknown service {name!r}; known: {', '.join(s.name for s in self.services)}")

    def up(self, only: list[str] | None = None) -> list[StartReport]:
        """Start every local service not already running, then wait until each answers."""
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        return [self._up_one(svc) for svc in self.services if only is None or svc.name in only]

    def _up_one(self, svc: Service) -> StartReport:
        began = time.monotonic()
        if self.mode(svc) == "external":
            self._wait_healthy(svc, began, started=False)
            return StartReport(svc.name, False, time.monotonic() - began)
        specs = svc.prepare()
        mine = [running_pid(spec) for spec in specs]
        if all(mine):
            self._wait_healthy(svc, began, started=False)
            return StartReport(svc.name, False, time.monotonic() - began)
        self._check_ports_free(svc, specs, mine)
        for spec, pid in zip(specs, mine):
            if pid is None:
                start_process(spec)
        self._wait_healthy(svc, began, started=True, specs=specs)
        return StartReport(svc.name, True, time.monotonic() - began)

    def _check_ports_free(self, svc: Service, specs: list[ProcessSpec], mine: list[int | None]) -> None:
        if any(mine):
            return  # part of it runs (e.g. the JobManager without its TaskManager): ports are ours
        for port in svc.ports():
            if port_open(svc.address.host, port):
                raise StackError(
                    f"{svc.name}: port {svc.address.host}:{port} is already taken by another process "
                    f"(not started by this stack); stop it or set another port via STREAMSCORE_* "
                    f"(log: {svc.log_file})"
                )

    def _wait_healthy(self, svc: Service, began: float, started: bool,
                      specs: list[ProcessSpec] | None = None) -> None:
        deadline = self.settings.start_timeout_s

        def healthy() -> bool:
            for spec in specs or []:
                if running_pid(spec) is None:
                    raise _Died(spec)
            return svc.probe()[0]

        try:
            ok = wait_for(healthy, deadline, interval_s=0.5, propagate=(_Died,))
        except _Died as died:
            raise StackError(
                f"{svc.name}: process {died.spec.name} exited during start-up; see its log {died.spec.log_file}\n"
                + _indent(tail(died.spec.log_file, 15))
            ) from died
        if not ok:
            where = "the external service" if not started and self.mode(svc) == "external" else "it"
            raise StackError(
                f"{svc.name}: {where} did not answer at {svc.address} within {deadline:.0f}s; "
                f"log: {svc.log_file}\n" + _indent(tail(svc.log_file, 15))
            )

    def down(self) -> list[str]:
        """Stop (by pid) what ``up`` started, in reverse order. Returns the names of processes stopped."""
        stopped = ["flink-submitter"] if stop_daemon(self.settings) else []  # the warm client JVM, if one ran
        if self.settings.prometheus_mode == "off":  # one started earlier with STREAMSCORE_PROMETHEUS=on
            prometheus = PrometheusService(self.settings)
            stopped += [spec.name for spec in _specs(prometheus) if stop_process(spec)]
        for svc in reversed(self.services):
            if self.mode(svc) == "external":
                continue
            for spec in reversed(_specs(svc)):
                if stop_process(spec):
                    stopped.append(spec.name)
        orphans = kill_processes_with_env(f"FLINK_CONF_DIR={FlinkHome(self.settings).conf_dir}")
        if orphans:
            stopped.append(f"{orphans} orphaned Flink worker process(es)")
        return stopped

    def status(self) -> list[Health]:
        return [self._health(svc) for svc in self.services]

    def _health(self, svc: Service) -> Health:
        mode = self.mode(svc)
        pids: tuple[int, ...] = ()
        if mode == "local":
            pids = tuple(p for p in (running_pid(s) for s in _specs(svc)) if p)
        try:
            healthy, detail = svc.probe()
        except Exception as exc:  # noqa: BLE001 - status reports, it does not fail
            healthy, detail = False, f"not answering ({type(exc).__name__})"
        running = bool(pids) if mode == "local" else healthy
        return Health(svc.name, str(svc.address), mode, running, healthy, detail, pids)

    def logs(self, name: str, lines: int = 50) -> str:
        svc = self.service(name)
        return "\n".join(f"==> {spec.log_file} <==\n{tail(spec.log_file, lines)}" for spec in _specs(svc))


def _specs(svc: Service) -> list[ProcessSpec]:
    """The process specs of a service without side effects (no downloads, no formatting)."""
    if isinstance(svc, FlinkService):
        return svc.process_specs()
    return [ProcessSpec(svc.name, [], svc.log_file, svc.settings.run_dir / f"{svc.name}.pid")]


class _Died(StackError):
    def __init__(self, spec: ProcessSpec):
        super().__init__(spec.name)
        self.spec = spec


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
