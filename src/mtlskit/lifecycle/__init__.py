"""The life of issued certificates after issuance: renewal planning (pure: who is due,
when, with jitter and backoff), the renew workflow, the agent, enrollment tokens and
intermediate rotation."""
