"""Scenario 5: validation cost per message on the server's hot path.

``MessageValidator.check_client_message`` is timed in this process on realistic client
messages, with the backend the server selects by default and with plain ``jsonschema``.
Its share of the server's CPU per message is the ping's validation time over the
reference server's CPU time per ping round trip, measured in the ping/pong scenario.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.report import INFO, Row, at_most, make_row
from bench.scenarios import Context
from bench.scenarios.pingpong import reference_cpu_per_message
from rep_spec import MessageValidator
from rep_spec.validation import JsonschemaBackend

STAMP = "2026-11-26T12:00:00.000Z"
MESSAGES: dict[str, dict[str, Any]] = {
    "ping": {"id": "c-1", "type": "ping", "timestamp": STAMP, "payload": {"timestamp": 1}},
    "chat_message": {
        "id": "c-2",
        "type": "chat_message",
        "timestamp": STAMP,
        "payload": {"roomId": "lobby", "content": "hello <b>everyone</b>, see you at 10"},
        "metadata": {"version": "1.0", "source": "client"},
    },
    "room_join": {
        "id": "c-3",
        "type": "room_join",
        "timestamp": STAMP,
        "payload": {"roomId": "r1"},
    },
    "status_update": {
        "id": "c-4",
        "type": "status_update",
        "timestamp": STAMP,
        "payload": {"status": "away"},
    },
    "data_update": {
        "id": "c-5",
        "type": "data_update",
        "timestamp": STAMP,
        "payload": {
            "collection": "todos",
            "recordId": "t-17",
            "data": {"title": "write the benchmark", "done": False, "tags": ["perf", "rep"]},
            "expectedVersion": 3,
        },
    },
}


def cost_us(validator: MessageValidator, message: dict[str, Any], iterations: int) -> float:
    """Median over three loops of the CPU microseconds one check takes.

    CPU time of this thread, not wall time: the server side of the share is CPU time too,
    and on a shared machine wall time also counts the moments another process ran.
    """
    if validator.check_client_message(message) is not None:
        raise ValueError(f"benchmark message is invalid: {message['type']}")
    loops = []
    for _ in range(3):
        began = time.thread_time_ns()
        for _ in range(iterations):
            validator.check_client_message(message)
        loops.append((time.thread_time_ns() - began) / iterations / 1000)
    return statistics.median(loops)


def run(ctx: Context) -> list[Row]:
    iterations = ctx.profile.validation_iterations
    default = MessageValidator()
    reference_backend = MessageValidator(backend=JsonschemaBackend())
    backend_name = type(default.backend).__name__
    per_type = {name: cost_us(default, message, iterations) for name, message in MESSAGES.items()}
    slow = {
        name: cost_us(reference_backend, message, max(1, iterations // 10))
        for name, message in MESSAGES.items()
    }
    cpu_per_message = reference_cpu_per_message(ctx)
    ctx.log(f"validation: {backend_name}, server CPU {cpu_per_message:.1f} us per ping")
    details = {
        "backend": backend_name,
        "us_by_type": per_type,
        "jsonschema_us_by_type": slow,
        "baseline_extra": "server CPU per ping round trip",
        "value_extra": backend_name,
    }
    return [
        make_row(
            "validation share of server CPU (ping)",
            "us",
            "server CPU/msg",
            [cpu_per_message],
            [per_type["ping"]],
            at_most(0.10, "", on="ratio"),
            details=details,
        ),
        make_row(
            "validation, mix of 5 client types",
            "us",
            "jsonschema",
            [statistics.mean(slow.values())],
            [statistics.mean(per_type.values())],
            INFO,
            details={"backend": backend_name},
        ),
    ]
