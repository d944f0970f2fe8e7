"""Building response bodies that depend on who asks (contact details, competitor names)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from service.api.deps import ADMIN, PARTNER
from service.api.schemas import Contact, LeadPublic
from service.db.keys import Principal
from service.db.tables import Lead

#: States in which the partner holding the lead has accepted it (or claimed it from the
#: pool) and works it: only then does it see who to call.
CONTACT_STATES = frozenset(
    {"accepted", "claimed", "contacted", "qualified", "opportunity", "won", "lost"}
)


def contact_visibility(caller: Principal, state: str | None = None) -> str | None:
    """Why the caller may not see a lead's contact details, or ``None`` when it may."""
    if caller.role == ADMIN:
        return None
    if caller.role == PARTNER:
        if state in CONTACT_STATES:
            return None
        return "contact details are shown once the partner has accepted the lead"
    return f"{caller.role} keys do not see contact details"


def lead_public(lead: Lead, caller: Principal, state: str | None = None) -> LeadPublic:
    """A lead as ``caller`` may see it (contact only when allowed)."""
    withheld = contact_visibility(caller, state)
    body = LeadPublic.model_validate(lead, from_attributes=True)
    if withheld is None:
        body.contact = Contact(
            contact_name=lead.contact_name,
            contact_email=lead.contact_email,
            contact_phone=lead.contact_phone,
        )
    else:
        body.contact_withheld = withheld
    owner = body.account_owner_partner_id
    if caller.role == PARTNER and owner is not None and owner != caller.partner_id:
        body.account_owner_partner_id = "another partner"  # whose account it is, is not theirs
    return body


def redact_partners(text: str, own: str, others: Iterable[str]) -> str:
    """``text`` with every partner id but ``own`` replaced by "another partner".

    A partner learns why it received a lead, not which competitor scored higher
    or whose capacity was full.
    """
    names = sorted({o for o in others if o and o != own}, key=len, reverse=True)
    if not names:
        return text
    pattern = re.compile(
        r"(?<![\w-])(?:partner\s+)?['\"]?(?:" + "|".join(re.escape(n) for n in names)
        + r")['\"]?(?![\w-])"
    )
    return pattern.sub("another partner", text)
