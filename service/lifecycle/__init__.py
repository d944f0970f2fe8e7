"""The lead's life after allocation: states, SLA deadlines, pool, re-routing, webhooks, time.

Pure pieces the service wires in: :mod:`service.lifecycle.states` (state
machine, reasons, deadlines, pool cascade, re-route rule),
:mod:`service.lifecycle.webhooks` (signed events, delivery with retries and a
log), :mod:`service.lifecycle.destinations` (where webhooks may be sent) and
:mod:`service.lifecycle.clock` (injectable time).
"""

from service.lifecycle.clock import Clock, FrozenClock, SystemClock
from service.lifecycle.states import (
    LOST_REASONS,
    REJECT_REASONS,
    IllegalTransition,
    LeadEvent,
    LeadState,
    Reason,
    Reroute,
    accept_deadline,
    allowed_events,
    can_claim,
    contact_deadline,
    due_event,
    lost_reason,
    next_partner,
    reject_reason,
    transition,
    visible_tiers,
)
from service.lifecycle.webhooks import (
    DeliveryAttempt,
    DeliveryLog,
    MemoryDeliveryLog,
    RetryPolicy,
    SignatureError,
    WebhookEvent,
    WebhookSender,
    make_event,
    sign,
    verify_signature,
)

__all__ = [
    "LOST_REASONS",
    "REJECT_REASONS",
    "Clock",
    "DeliveryAttempt",
    "DeliveryLog",
    "FrozenClock",
    "IllegalTransition",
    "LeadEvent",
    "LeadState",
    "MemoryDeliveryLog",
    "Reason",
    "Reroute",
    "RetryPolicy",
    "SignatureError",
    "SystemClock",
    "WebhookEvent",
    "WebhookSender",
    "accept_deadline",
    "allowed_events",
    "can_claim",
    "contact_deadline",
    "due_event",
    "lost_reason",
    "make_event",
    "next_partner",
    "reject_reason",
    "sign",
    "transition",
    "verify_signature",
    "visible_tiers",
]
