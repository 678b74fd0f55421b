"""Hot reload, pure part: swap in a new policy only if it is valid; otherwise keep the running one.

>>> from riskstream.data import DEFAULT_POLICY
>>> holder = PolicyHolder(load_policy(DEFAULT_POLICY))
>>> holder.offer("{name: broken, version: 2}", source="control:policy")
(False, "control:policy: segments: missing or empty. Fix: add 'segments: {credit_line: {thresholds: {warn_pd: .., limit_pd: .., close_pd: ..}}}'")
>>> holder.policy.name, holder.refusals
('retail-champion', 1)
"""

from __future__ import annotations

from riskstream.core.policy.loader import Policy, PolicyError, load_policy


class PolicyHolder:
    """Holds the running policy; `offer` validates a new text and either swaps it in or refuses it."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.refusals = 0
        self.accepted = 0
        self.last_error: str | None = None

    def offer(self, text: str, source: str = "<offered>"):
        """Return `(accepted, error)`; a broken policy is refused and the running one stays."""
        try:
            new = load_policy(text, source=source)
        except PolicyError as e:
            self.refusals += 1
            self.last_error = str(e)
            return False, str(e)
        self.policy = new
        self.accepted += 1
        self.last_error = None
        return True, None

    def change_record(self, previous: Policy) -> dict:
        """Audit payload describing the switch from `previous` to the running policy (kind `policy_change`)."""
        return {
            "from": {"name": previous.name, "version": previous.version, "sha256": previous.digest},
            "to": {"name": self.policy.name, "version": self.policy.version, "sha256": self.policy.digest,
                   "mode": self.policy.mode, "source": self.policy.source},
        }
