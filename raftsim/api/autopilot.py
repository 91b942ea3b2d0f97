"""``/v1/operator/autopilot``: the servers' health as the leader's autopilot judges it,
and autopilot's configuration, in Nomad's shapes (``api.OperatorHealthReply``,
``api.AutopilotConfiguration``: durations as Go duration strings)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from raftsim import __version__
from raftsim.api.durations import go_duration, parse_go_duration
from raftsim.api.errors import INVALID_METHOD, ApiError, text_response
from raftsim.api.forwarding import answer_by_leader, answer_locally
from raftsim.api.meta import read_headers
from raftsim.api.params import query_value, stale
from raftsim.api.state import STATE, ApiState
from raftsim.core import quorum
from raftsim.runtime.autopilot import CONFIG_KEY, AutopilotConfig, ServerHealth
from raftsim.runtime.kv import encode_put

routes = web.RouteTableDef()

#: Nomad's body fields, in Nomad's order, with the type each must have in JSON
_BOOL_FIELDS = {"CleanupDeadServers": "cleanup_dead_servers",
                "EnableRedundancyZones": "enable_redundancy_zones",
                "DisableUpgradeMigration": "disable_upgrade_migration",
                "EnableCustomUpgrades": "enable_custom_upgrades"}
_INT_FIELDS = {"MaxTrailingLogs": "max_trailing_logs", "MinQuorum": "min_quorum"}
_DURATION_FIELDS = {"LastContactThreshold": "last_contact_threshold",
                    "ServerStabilizationTime": "server_stabilization_time"}


def wall_time(state: ApiState, loop_time: float) -> str:
    """A loop time as Go's JSON time (RFC 3339, UTC, rounded to the second as Nomad
    rounds StableSince). The simulated world's times count from the Unix epoch."""
    moment = datetime.fromtimestamp(round(loop_time + state.wall_offset), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _server_json(state: ApiState, server: ServerHealth) -> dict[str, Any]:
    if server.leader:
        contact = "0s"
    elif server.last_contact is None:
        contact = "-1ns"  # never heard from: Nomad's negative LastContact
    else:
        contact = go_duration(server.last_contact)
    return {
        "ID": server.id, "Name": state.directory.node_name(server.id),
        "Address": server.address, "SerfStatus": server.status, "Version": __version__,
        "Leader": server.leader, "LastContact": contact, "LastTerm": server.last_term,
        "LastIndex": server.last_index, "Healthy": server.healthy, "Voter": server.voter,
        "StableSince": wall_time(state, server.stable_since),
    }


def health_report(state: ApiState) -> dict[str, Any]:
    """Autopilot's report from the leader (Nomad's OperatorHealthReply)."""
    health = state.server.autopilot.health()
    servers = [_server_json(state, s) for s in health]
    voters = [s.id for s in health if s.voter]
    healthy_voters = sum(1 for s in health if s.voter and s.healthy)
    tolerance = max(healthy_voters - quorum.quorum_size(len(voters)), 0)
    leader = next((s.id for s in health if s.leader), state.server.id)
    return {"Healthy": all(s.healthy for s in health), "FailureTolerance": tolerance,
            "Servers": servers, "Leader": leader, "Voters": voters}


@routes.get("/v1/operator/autopilot/health", allow_head=False)
async def autopilot_health(request: web.Request) -> web.StreamResponse:
    """Always the leader's report (Nomad forwards it even with ``stale``)."""
    state = request.app[STATE]
    stale(request)

    async def act() -> web.StreamResponse:
        report = health_report(state)
        status = 200 if report["Healthy"] else 429
        return web.json_response(report, status=status,
                                 headers=read_headers(state, state.node().commit_index))

    return await answer_by_leader(request, act, read=True)


@routes.route("*", "/v1/operator/autopilot/health")
async def health_other_method(request: web.Request) -> web.StreamResponse:
    return text_response(404, INVALID_METHOD)  # Nomad's answer


# ---------------------------------------------------------------- configuration

def configuration_json(config: AutopilotConfig) -> dict[str, Any]:
    return {
        "CleanupDeadServers": config.cleanup_dead_servers,
        "LastContactThreshold": go_duration(config.last_contact_threshold),
        "MaxTrailingLogs": config.max_trailing_logs,
        "MinQuorum": config.min_quorum,
        "ServerStabilizationTime": go_duration(config.server_stabilization_time),
        "EnableRedundancyZones": config.enable_redundancy_zones,
        "DisableUpgradeMigration": config.disable_upgrade_migration,
        "EnableCustomUpgrades": config.enable_custom_upgrades,
        "CreateIndex": config.create_index,
        "ModifyIndex": config.modify_index,
    }


def parse_configuration(body: bytes) -> AutopilotConfig:
    """Nomad decodes the body into a zero-valued AutopilotConfiguration: a field left
    out is false, 0 or 0s. Durations are Go duration strings or nanoseconds."""
    try:
        raw = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _parse_error(f"invalid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise _parse_error("the body must be a JSON object")
    fields: dict[str, Any] = {"cleanup_dead_servers": False, "max_trailing_logs": 0,
                              "last_contact_threshold": 0.0,
                              "server_stabilization_time": 0.0}
    for name, attribute in _BOOL_FIELDS.items():
        if name in raw:
            if not isinstance(raw[name], bool):
                raise _parse_error(f"{name} must be true or false")
            fields[attribute] = raw[name]
    for name, attribute in _INT_FIELDS.items():
        if name in raw:
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _parse_error(f"{name} must be a whole number >= 0")
            fields[attribute] = value
    for name, attribute in _DURATION_FIELDS.items():
        if name in raw:
            fields[attribute] = _duration(name, raw[name])
    return AutopilotConfig(**fields)


def _duration(name: str, value: object) -> float:
    if isinstance(value, str):
        try:
            seconds = parse_go_duration(value)
        except ValueError as exc:
            raise _parse_error(str(exc)) from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1e9  # a Go time.Duration in JSON: nanoseconds
    else:
        raise _parse_error(f'{name} must be a duration such as "10s"')
    if seconds < 0:
        raise _parse_error(f"{name} must not be negative")
    return seconds


def _parse_error(detail: str) -> ApiError:
    return ApiError(400, f"Error parsing autopilot config: {detail}")


@routes.get("/v1/operator/autopilot/configuration", allow_head=False)
async def get_autopilot_configuration(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]

    async def act() -> web.StreamResponse:
        if not stale(request):
            await state.server.read_barrier(timeout=state.request_timeout)
        config = state.server.autopilot.configuration()
        return web.json_response(configuration_json(config),
                                 headers=read_headers(state, config.modify_index))

    if stale(request):
        return await answer_locally(request, act)
    return await answer_by_leader(request, act, read=True)


@routes.put("/v1/operator/autopilot/configuration")
async def put_autopilot_configuration(request: web.Request) -> web.StreamResponse:
    """Replace the configuration (a replicated write). ``?cas=<ModifyIndex>``: only if
    it is still the one last read, answering ``true`` or ``false`` (Nomad's CAS)."""
    state = request.app[STATE]
    body = await request.read()
    config = parse_configuration(body)
    cas_text = query_value(request, "cas")
    cas: int | None = None
    if cas_text is not None:
        if not cas_text.isdigit():
            raise ApiError(400, f'Error parsing cas value: strconv.ParseUint: parsing '
                                f'"{cas_text}": invalid syntax')
        cas = int(cas_text)

    async def act() -> web.StreamResponse:
        done = await state.server.propose(encode_put(CONFIG_KEY, config.encode(), cas),
                                          timeout=state.request_timeout)
        return web.json_response(done if cas is not None else True)

    return await answer_by_leader(request, act, body=body)


@routes.route("*", "/v1/operator/autopilot/configuration")
async def configuration_other_method(request: web.Request) -> web.StreamResponse:
    return text_response(404, INVALID_METHOD)  # Nomad's answer
