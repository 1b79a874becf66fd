"""Running a step: answer its questions with the broker, hand its outputs to a sink."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from reference_server.broker.base import Broker
from reference_server.core.effects import Ask, Close, Effect, Publish, Send, Step

T = TypeVar("T")
#: Takes the step's outputs as they come; synchronous, since queueing a frame never waits.
OutputSink = Callable[[Send | Close], None]


async def run_step(step: Step[T], broker: Broker, sink: OutputSink) -> T:
    """Drive ``step`` to completion; effects happen in the order the core yielded them.

    A broker call that fails is thrown back into the step at the ``yield`` that asked for
    it, so the core decides what the client hears (ERR-013) instead of the socket dying.
    """
    answer: Any = None
    failure: Exception | None = None
    while True:
        try:
            if failure is not None:
                effect: Effect = step.throw(failure)
            else:
                effect = step.send(answer)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        answer, failure = None, None
        if isinstance(effect, Ask):
            try:
                answer = await effect.call(broker)
            except Exception as exc:
                failure = exc
        elif isinstance(effect, Publish):
            try:
                await broker.publish(effect.publication)
            except Exception as exc:
                failure = exc
        else:
            sink(effect)


def run_step_sync(step: Step[T], broker: Broker, outputs: list[Send | Close]) -> T:
    """For tests of the core: the in-memory broker never suspends, so no event loop is needed."""

    coroutine: Coroutine[Any, Any, T] = run_step(step, broker, outputs.append)
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("the broker suspended; run_step_sync needs a broker that never awaits")
