"""A small NetworkPolicy evaluator (networking.k8s.io/v1 semantics), enough to ask "is this flow allowed?".

- A policy selects the pods of its namespace that match its podSelector (matchLabels, matchExpressions).
- policyTypes, when absent, is Ingress, plus Egress if the policy has egress rules.
- A pod that no policy with Egress selects may send anywhere; one that some do may send only what one of
  their rules allows. Likewise for Ingress on the receiving pod. A flow needs both sides.
- A rule's peers: ipBlock (cidr minus its except blocks), podSelector (pods of the policy's namespace),
  namespaceSelector (every pod of the matching namespaces), or both selectors in one peer (AND).
  An absent or empty `from`/`to` is every peer; absent or empty `ports` is every port.
- Ports: protocol (TCP when absent), a numeric port, endPort ranges. Named ports are refused: the
  evaluator would have to resolve them against container specs, and this release uses none.
- Endpoints that are not pods on the pod network (hosts outside the cluster, host-network pods) are
  matched by ipBlock only and are never selected by a policy: NetworkPolicy does not filter them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    name: str
    ips: tuple[str, ...]
    # Labels of a pod on the pod network; None for anything NetworkPolicy cannot select.
    labels: Mapping[str, str] | None = None
    namespace: str | None = None
    namespace_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_pod(self) -> bool:
        return self.labels is not None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # Names of the policies whose rules allow it, or why no policy is involved.
    by: tuple[str, ...]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    egress: Decision
    ingress: Decision

    @property
    def governed(self) -> bool:
        """Whether some NetworkPolicy takes part in the decision at all."""
        ungoverned = {(UNSELECTED,), (NOT_A_POD,)}
        return self.egress.by not in ungoverned or self.ingress.by not in ungoverned


UNSELECTED = "no policy selects it"
NOT_A_POD = "not a pod on the pod network"


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector; an empty one matches everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"unknown selector operator {op!r}")
    return True


def _namespace(policy: Mapping[str, Any], default: str) -> str:
    return policy.get("metadata", {}).get("namespace") or default


def policy_types(policy: Mapping[str, Any]) -> list[str]:
    spec = policy["spec"]
    if spec.get("policyTypes"):
        return list(spec["policyTypes"])
    return ["Ingress"] + (["Egress"] if "egress" in spec else [])


def selects(policy: Mapping[str, Any], endpoint: Endpoint, default_ns: str) -> bool:
    if not endpoint.is_pod or endpoint.namespace != _namespace(policy, default_ns):
        return False
    return selector_matches(policy["spec"].get("podSelector"), endpoint.labels or {})


def _in_block(ip: str, block: Mapping[str, Any]) -> bool:
    address = ipaddress.ip_address(ip)
    if address not in ipaddress.ip_network(block["cidr"], strict=False):
        return False
    return not any(address in ipaddress.ip_network(e, strict=False) for e in block.get("except") or [])


def peer_matches(peer: Mapping[str, Any], policy_ns: str, endpoint: Endpoint, ip: str) -> bool:
    if "ipBlock" in peer:
        return _in_block(ip, peer["ipBlock"])
    if not endpoint.is_pod:
        return False
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], endpoint.namespace_labels):
            return False
    elif endpoint.namespace != policy_ns:
        return False
    return selector_matches(peer.get("podSelector"), endpoint.labels or {})


def port_matches(ports: list[Mapping[str, Any]] | None, protocol: str, port: int) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        if "port" not in entry:
            return True
        first = entry["port"]
        if isinstance(first, str):
            raise ValueError(f"named port {first!r}: not supported by this evaluator")
        if first <= port <= entry.get("endPort", first):
            return True
    return False


def _side(
    policies: list[Mapping[str, Any]],
    subject: Endpoint,
    peer: Endpoint,
    peer_ip: str,
    protocol: str,
    port: int,
    *,
    direction: str,
    default_ns: str,
) -> Decision:
    kind, rules_key, peers_key = ("Egress", "egress", "to") if direction == "egress" else ("Ingress", "ingress", "from")
    if not subject.is_pod:
        return Decision(True, (NOT_A_POD,))
    applying = [p for p in policies if kind in policy_types(p) and selects(p, subject, default_ns)]
    if not applying:
        return Decision(True, (UNSELECTED,))
    by = []
    for policy in applying:
        ns = _namespace(policy, default_ns)
        for rule in policy["spec"].get(rules_key) or []:
            peers = rule.get(peers_key) or []
            if peers and not any(peer_matches(p, ns, peer, peer_ip) for p in peers):
                continue
            if port_matches(rule.get("ports"), protocol, port):
                by.append(policy["metadata"]["name"])
                break
    return Decision(bool(by), tuple(by))


def evaluate(
    policies: list[Mapping[str, Any]],
    source: Endpoint,
    destination: Endpoint,
    protocol: str,
    port: int,
    *,
    default_ns: str,
) -> Verdict:
    """The flow from every address of `source` to every address of `destination`; allowed only if all are."""
    egress_ok, ingress_ok = True, True
    egress_by: set[str] = set()
    ingress_by: set[str] = set()
    for src_ip in source.ips:
        for dst_ip in destination.ips:
            out = _side(
                policies, source, destination, dst_ip, protocol, port, direction="egress", default_ns=default_ns
            )
            into = _side(
                policies, destination, source, src_ip, protocol, port, direction="ingress", default_ns=default_ns
            )
            egress_ok &= out.allowed
            ingress_ok &= into.allowed
            egress_by.update(out.by)
            ingress_by.update(into.by)
    return Verdict(
        egress_ok and ingress_ok,
        Decision(egress_ok, tuple(sorted(egress_by))),
        Decision(ingress_ok, tuple(sorted(ingress_by))),
    )
