"""The NetworkPolicy evaluator behind test_flows.py, on policies small enough to check by hand."""

from __future__ import annotations

import pytest

from tests.chart import netpol

NS = "apps"
NS_LABELS = {"kubernetes.io/metadata.name": NS}
WEB = netpol.Endpoint("web", ("10.42.0.5",), {"app": "web"}, NS, NS_LABELS)
DB = netpol.Endpoint("db", ("10.42.0.6",), {"app": "db"}, NS, NS_LABELS)
OTHER_NS_WEB = netpol.Endpoint(
    "web elsewhere", ("10.42.1.5",), {"app": "web"}, "other", {"kubernetes.io/metadata.name": "other"}
)
PUBLIC = netpol.Endpoint("public host", ("93.184.216.34",))
PRIVATE = netpol.Endpoint("private host", ("10.1.2.3",))
HOST_NET = netpol.Endpoint("host-network pod", ("10.0.0.10",))


def policy(name: str, selector: dict, **spec) -> dict:
    return {"metadata": {"name": name}, "spec": {"podSelector": selector, **spec}}


WEB_EGRESS_DB = policy(
    "web-to-db",
    {"matchLabels": {"app": "web"}},
    policyTypes=["Egress"],
    egress=[{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 5432}]}],
)
DB_INGRESS_WEB = policy(
    "db-from-web",
    {"matchLabels": {"app": "db"}},
    ingress=[
        {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"protocol": "TCP", "port": 5432}]}
    ],
)
WEB_HTTPS = policy(
    "web-https",
    {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
    policyTypes=["Egress"],
    egress=[{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": 443}]}],
)


def check(policies, src, dst, port, proto="TCP"):
    return netpol.evaluate(policies, src, dst, proto, port, default_ns=NS)


def test_allowed_when_both_sides_allow():
    verdict = check([WEB_EGRESS_DB, DB_INGRESS_WEB], WEB, DB, 5432)
    assert verdict.allowed
    assert verdict.egress.by == ("web-to-db",) and verdict.ingress.by == ("db-from-web",)


def test_denied_by_port_and_by_protocol():
    assert not check([WEB_EGRESS_DB, DB_INGRESS_WEB], WEB, DB, 5433).allowed
    assert not check([WEB_EGRESS_DB, DB_INGRESS_WEB], WEB, DB, 5432, "UDP").allowed


def test_denied_by_an_except_block():
    assert check([WEB_HTTPS], WEB, PUBLIC, 443).allowed
    verdict = check([WEB_HTTPS], WEB, PRIVATE, 443)
    assert not verdict.allowed and verdict.egress.by == ()


def test_no_policy_selects_then_allowed():
    verdict = check([WEB_EGRESS_DB], DB, WEB, 8080)
    assert verdict.allowed and not verdict.governed
    assert verdict.egress.by == (netpol.UNSELECTED,) and verdict.ingress.by == (netpol.UNSELECTED,)


def test_one_side_is_not_enough():
    # Egress allowed by web's policy, ingress denied: db has an Ingress policy with no matching rule.
    deny_db = policy("db-deny", {"matchLabels": {"app": "db"}}, policyTypes=["Ingress"])
    verdict = check([WEB_EGRESS_DB, deny_db], WEB, DB, 5432)
    assert not verdict.allowed and verdict.egress.allowed and not verdict.ingress.allowed


def test_policy_types_default_and_empty_rules():
    # No policyTypes and no egress key: an Ingress-only policy, so egress stays open.
    ingress_only = policy("db-ingress", {"matchLabels": {"app": "db"}}, ingress=[])
    assert check([ingress_only], DB, PUBLIC, 443).allowed
    assert not check([ingress_only], WEB, DB, 5432).allowed
    # An egress rule with neither `to` nor `ports` allows everything.
    open_egress = policy("web-open", {"matchLabels": {"app": "web"}}, policyTypes=["Egress"], egress=[{}])
    assert check([open_egress], WEB, PRIVATE, 1).allowed


def test_pod_and_namespace_selectors():
    same_ns_only = policy(
        "db-from-web-same-ns", {"matchLabels": {"app": "db"}}, ingress=[{"from": [{"podSelector": {}}]}]
    )
    assert check([same_ns_only], WEB, DB, 5432).allowed
    assert not check([same_ns_only], OTHER_NS_WEB, DB, 5432).allowed
    both = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}}}
    both["podSelector"] = {"matchLabels": {"app": "web"}}
    cross = policy("db-from-other-web", {"matchLabels": {"app": "db"}}, ingress=[{"from": [both]}])
    assert check([cross], OTHER_NS_WEB, DB, 5432).allowed
    assert not check([cross], WEB, DB, 5432).allowed


def test_host_network_and_outside_endpoints_match_ip_blocks_only():
    from_pods = policy("db-from-any-pod", {"matchLabels": {"app": "db"}}, ingress=[{"from": [{"podSelector": {}}]}])
    assert not check([from_pods], HOST_NET, DB, 5432).allowed
    from_node = policy(
        "db-from-node", {"matchLabels": {"app": "db"}}, ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.10/32"}}]}]
    )
    assert check([from_node], HOST_NET, DB, 5432).allowed
    # A host-network pod is never selected: a deny-all policy does not stop it sending.
    assert check([policy("deny-all", {}, policyTypes=["Egress"])], HOST_NET, PUBLIC, 25).allowed


def test_port_ranges_and_named_ports():
    ranged = policy(
        "web-range",
        {},
        policyTypes=["Egress"],
        egress=[{"ports": [{"protocol": "TCP", "port": 1024, "endPort": 2048}]}],
    )
    assert check([ranged], WEB, PUBLIC, 1024).allowed and check([ranged], WEB, PUBLIC, 2048).allowed
    assert not check([ranged], WEB, PUBLIC, 2049).allowed and not check([ranged], WEB, PUBLIC, 1023).allowed
    named = policy("web-named", {}, policyTypes=["Egress"], egress=[{"ports": [{"port": "http"}]}])
    with pytest.raises(ValueError, match="named port"):
        check([named], WEB, PUBLIC, 80)


def test_every_address_of_an_endpoint_must_pass():
    two = netpol.Endpoint("node", ("10.0.0.10", "10.42.0.1"))
    only_one = policy(
        "db-from-one", {"matchLabels": {"app": "db"}}, ingress=[{"from": [{"ipBlock": {"cidr": "10.0.0.10/32"}}]}]
    )
    assert not check([only_one], two, DB, 5432).allowed


def test_selector_operators():
    labels = {"tier": "airflow", "component": "statsd"}
    assert netpol.selector_matches(
        {"matchExpressions": [{"key": "component", "operator": "NotIn", "values": ["x"]}]}, labels
    )
    assert not netpol.selector_matches(
        {"matchExpressions": [{"key": "component", "operator": "NotIn", "values": ["statsd"]}]}, labels
    )
    assert netpol.selector_matches({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, labels)
    assert not netpol.selector_matches({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, labels)
    assert netpol.selector_matches({}, labels)
