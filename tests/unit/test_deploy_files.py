"""The deployment artifacts stay valid without Docker, AWS or a cluster.

- docker-compose.yml parses, wires what docs/deploy.md promises, and every queuecast command in
  it is one the CLI accepts (so a renamed flag cannot silently break the deployment).
- deploy/cloudformation/queuecast-connect.yaml passes cfn-lint (errors and warnings fail), and
  its connection, rule, dead-letter queue and IAM policy say what docs/deploy.md promises.
- Every manifest of deploy/kubernetes validates against the Kubernetes API schema of a fixed
  version, strictly (an unknown field is an error), offline with kubernetes-validate's own
  schemas; and the manifests hold together (probes, drain, Secret, selectors, sizing).
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
import uuid
from pathlib import Path

import cfnlint.api
import kubernetes_validate
import pytest
import yaml

from server.browser.config import GatewayConfig
from server.cli import build_parser
from server.emulator.eventbridge import contact_event
from server.emulator.model import Contact, ModelEvent
from server.http.serving import GRACEFUL_SHUTDOWN_SECONDS
from server.ids import instance_arn
from server.settings import Settings
from tests.unit._cloudformation import (
    ACCOUNT,
    INSTANCE_ID,
    PSEUDO_PARAMETERS,
    load_template,
    pattern_matches,
    render_pattern,
    render_sub,
)

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_runs_redis_emulator_two_replicas_and_a_balancer() -> None:
    services = compose()["services"]
    assert {"redis", "emulator", "queuecast-1", "queuecast-2", "lb"} <= set(services)
    assert services["lb"]["ports"] == ["8080:8080"]
    for name in ("queuecast-1", "queuecast-2"):
        env = services[name]["environment"]
        assert env["QUEUECAST_REDIS_URL"] == "redis://redis:6379/0"
        assert env["QUEUECAST_CONNECT_ENDPOINT_URL"] == "http://emulator:8001"
        assert "readyz" in " ".join(services[name]["healthcheck"]["test"])
        assert env["QUEUECAST_EVENTS_KEY"].startswith("${QUEUECAST_EVENTS_KEY:?")
    # The emulator is the instance's EventBridge rule: events to /v1/events through the
    # balancer (whichever replica takes one, every replica applies it), with the same key.
    emulator = services["emulator"]["command"]
    assert "--events-url=http://lb:8080/v1/events" in emulator
    assert "--events-key=${QUEUECAST_EVENTS_KEY:?" in " ".join(emulator)


def test_every_queuecast_command_in_compose_parses() -> None:
    parser = build_parser()
    for name, service in compose()["services"].items():
        if service.get("image") == "queuecast:local":
            args = parser.parse_args(service["command"])
            assert args.command in {"serve", "simulate"}, name


def test_nginx_upgrades_websockets_to_both_replicas() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "proxy_set_header Upgrade $http_upgrade;" in conf
    assert "server queuecast-1:8000" in conf and "server queuecast-2:8000" in conf


# -- deploy/cloudformation --------------------------------------------------------------------

TEMPLATE = ROOT / "deploy" / "cloudformation" / "queuecast-connect.yaml"
# Regions with Amazon Connect; cfn-lint checks each resource type exists in each.
LINT_REGIONS = ["us-east-1", "eu-west-2", "ap-southeast-2"]
EVENTS_KEY_HEADER = "X-Queuecast-Events-Key"

# Service Authorization Reference, Amazon Connect: the resource types each action requires
# (*). With `Resource` narrowed, a statement must name an ARN of every required type.
REQUIRED_RESOURCE_TYPES = {
    "connect:GetContactMetrics": {"instance", "contact"},
    "connect:DescribeContact": {"contact"},
    "connect:GetCurrentMetricData": {"queue", "routing-profile"},
    "connect:DescribeQueue": {"queue"},
    "connect:ListQueues": {"queue"},  # "wildcard-queue": instance/<id>/queue/*
    "connect:SearchContacts": {"instance"},
}


def cfn() -> dict:
    return load_template(TEMPLATE)


def the_resource(template: dict, resource_type: str) -> dict:
    found = [r for r in template["Resources"].values() if r["Type"] == resource_type]
    assert len(found) == 1, f"{len(found)} resources of type {resource_type}"
    return found[0]["Properties"]


def logical_id(template: dict, resource_type: str) -> str:
    (name,) = [n for n, r in template["Resources"].items() if r["Type"] == resource_type]
    return name


def test_cfn_lint_finds_no_error_and_no_warning() -> None:
    matches = cfnlint.api.lint(TEMPLATE.read_text(), regions=LINT_REGIONS)
    serious = [m for m in matches if m.rule.severity in {"error", "warning"}]
    assert not serious, "\n".join(
        f"{m.rule.id} line {m.linenumber}: {m.message[:300]}" for m in serious
    )


def test_connection_sends_the_events_key_in_its_header() -> None:
    template = cfn()
    connection = the_resource(template, "AWS::Events::Connection")
    assert connection["AuthorizationType"] == "API_KEY"
    api_key = connection["AuthParameters"]["ApiKeyAuthParameters"]
    assert api_key["ApiKeyName"] == EVENTS_KEY_HEADER
    assert api_key["ApiKeyValue"] == {"Ref": "EventsApiKey"}
    assert template["Parameters"]["EventsApiKey"]["NoEcho"] is True


def test_api_destination_posts_to_the_events_url() -> None:
    template = cfn()
    destination = the_resource(template, "AWS::Events::ApiDestination")
    assert destination["HttpMethod"] == "POST"
    assert destination["InvocationEndpoint"] == {"Ref": "QueuecastEventsUrl"}
    assert destination["ConnectionArn"] == {
        "Fn::GetAtt": [logical_id(template, "AWS::Events::Connection"), "Arn"]
    }
    assert destination["InvocationRateLimitPerSecond"] == {"Ref": "InvocationRateLimitPerSecond"}
    assert template["Parameters"]["InvocationRateLimitPerSecond"]["Default"] == 300


def test_rule_passes_this_instances_contact_events_and_no_others() -> None:
    template = cfn()
    rule = the_resource(template, "AWS::Events::Rule")
    assert rule["EventBusName"] == "default"
    pattern = render_pattern(rule["EventPattern"], {"ConnectInstanceId": INSTANCE_ID})
    region = PSEUDO_PARAMETERS["AWS::Region"]
    assert pattern["detail"]["instanceArn"] == [instance_arn(region, ACCOUNT, INSTANCE_ID)]

    def event_of(instance_id: str, kind: str) -> dict:
        contact = Contact(str(uuid.uuid4()), instance_id, str(uuid.uuid4()), 5, 1.0e9, 1)
        return contact_event(ModelEvent(kind, 1.0e9 + 5, contact), region, ACCOUNT)

    for kind in ("QUEUED", "CONNECTED_TO_AGENT", "DISCONNECTED"):
        assert pattern_matches(pattern, event_of(INSTANCE_ID, kind)), kind
        assert not pattern_matches(pattern, event_of(str(uuid.uuid4()), kind)), kind
    other_source = {**event_of(INSTANCE_ID, "QUEUED"), "detail-type": "Amazon Connect Agent Event"}
    assert not pattern_matches(pattern, other_source)


def test_rule_targets_the_api_destination_with_retries_and_a_dead_letter_queue() -> None:
    template = cfn()
    (target,) = the_resource(template, "AWS::Events::Rule")["Targets"]
    assert target["Arn"] == {
        "Fn::GetAtt": [logical_id(template, "AWS::Events::ApiDestination"), "Arn"]
    }
    assert target["RoleArn"] == {"Fn::GetAtt": [logical_id(template, "AWS::IAM::Role"), "Arn"]}
    assert set(target["RetryPolicy"]) == {"MaximumEventAgeInSeconds", "MaximumRetryAttempts"}
    queue = logical_id(template, "AWS::SQS::Queue")
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue, "Arn"]}}


def test_only_eventbridge_may_dead_letter_and_only_from_the_rule() -> None:
    template = cfn()
    policy = the_resource(template, "AWS::SQS::QueuePolicy")
    queue = logical_id(template, "AWS::SQS::Queue")
    assert policy["Queues"] == [{"Ref": queue}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}
    rule = logical_id(template, "AWS::Events::Rule")
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule, "Arn"]}}}


def test_eventbridge_role_may_invoke_that_api_destination_only() -> None:
    template = cfn()
    role = the_resource(template, "AWS::IAM::Role")
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    (policy,) = role["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == "events:InvokeApiDestination"
    destination = logical_id(template, "AWS::Events::ApiDestination")
    assert statement["Resource"] == {"Fn::GetAtt": [destination, "Arn"]}


def connect_resource_type(arn: str) -> str:
    """The Connect resource type an ARN of this template's instance names."""
    instance = instance_arn(PSEUDO_PARAMETERS["AWS::Region"], ACCOUNT, INSTANCE_ID)
    if arn == instance:
        return "instance"
    for resource_type in ("contact", "queue", "routing-profile"):
        if arn == f"{instance}/{resource_type}/*":
            return resource_type
    raise AssertionError(f"not an ARN of the instance or of its contacts, queues, profiles: {arn}")


def test_the_policy_names_exactly_the_calls_the_connect_client_makes() -> None:
    client = (ROOT / "server" / "connect" / "client.py").read_text()
    called = {f"connect:{api}" for api in re.findall(r'_call\(\s*"(\w+)"', client)}
    called |= {f"connect:{api}" for api in re.findall(r'_pages\(\s*"(\w+)"', client)}
    assert called == set(REQUIRED_RESOURCE_TYPES)


def test_connect_policy_grants_its_actions_on_the_instance_only() -> None:
    statements = the_resource(cfn(), "AWS::IAM::ManagedPolicy")["PolicyDocument"]["Statement"]
    granted: dict[str, set[str]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert "Condition" not in statement and "NotAction" not in statement
        actions = statement["Action"]
        resources = statement["Resource"]
        resources = resources if isinstance(resources, list) else [resources]
        types = {
            connect_resource_type(render_sub(r, {"ConnectInstanceId": INSTANCE_ID}))
            for r in resources
        }
        for action in actions if isinstance(actions, list) else [actions]:
            granted.setdefault(action, set()).update(types)
    assert set(granted) == set(REQUIRED_RESOURCE_TYPES)
    assert granted == REQUIRED_RESOURCE_TYPES  # every required type, nothing more


def test_outputs_name_the_rule_destination_queue_and_policy() -> None:
    template = cfn()
    outputs = {name: output["Value"] for name, output in template["Outputs"].items()}
    rule = logical_id(template, "AWS::Events::Rule")
    destination = logical_id(template, "AWS::Events::ApiDestination")
    assert outputs["ContactEventsRuleArn"] == {"Fn::GetAtt": [rule, "Arn"]}
    assert outputs["ApiDestinationArn"] == {"Fn::GetAtt": [destination, "Arn"]}
    assert outputs["DeadLetterQueueUrl"] == {"Ref": logical_id(template, "AWS::SQS::Queue")}
    assert outputs["ConnectPolicyArn"] == {"Ref": logical_id(template, "AWS::IAM::ManagedPolicy")}


# -- deploy/kubernetes ------------------------------------------------------------------------

K8S = ROOT / "deploy" / "kubernetes"
# The schema the manifests are validated against; they use the preStop `sleep` action (1.29+).
KUBERNETES_VERSION = "1.33.0"
MANIFESTS = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
# Settings being added to `queuecast serve` while these manifests land: drop each name once
# server/settings.py declares it, and the test below checks it like every other.
SETTINGS_BEING_ADDED = {
    "QUEUECAST_FORWARDED_ALLOW_IPS",
    "QUEUECAST_MAX_SOCKETS",
}
# docs/benchmarks.md: RSS per idle socket; an idle replica on Redis measured 83 MiB (85,232 kB).
KIB_PER_SOCKET = 16.5
BASE_RSS_MIB = 83


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d is not None]


def k8s(kind: str) -> dict:
    found = [d for name in MANIFESTS for d in documents(name) if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return found[0]


def pod_spec() -> dict:
    return k8s("Deployment")["spec"]["template"]["spec"]


def the_container() -> dict:
    (container,) = pod_spec()["containers"]
    return container


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    number, unit = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * units[unit]


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_validates_strictly_against_the_kubernetes_schema(name: str) -> None:
    docs = documents(name)
    assert docs, f"{name} holds no object"
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{name}: {doc['kind']} {where}: {exc.message}")


def test_kustomization_applies_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [m for m in MANIFESTS if m != "secret.yaml"]
    assert kustomization["namespace"] == k8s("Namespace")["metadata"]["name"]
    (image,) = kustomization["images"]
    assert f"{image['name']}:{image['newTag']}" == the_container()["image"]


def test_image_is_this_version_serving_on_all_addresses() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    container = the_container()
    assert container["image"] == f"queuecast:{version}"
    assert container["args"] == ["serve"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["QUEUECAST_HOST"] == "0.0.0.0"
    assert container["ports"] == [{"name": "http", "containerPort": int(env["QUEUECAST_PORT"])}]


def test_probes_readiness_on_readyz_and_liveness_on_healthz() -> None:
    container = the_container()
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_grace_period_outlasts_the_pre_stop_pause_and_the_drain() -> None:
    pre_stop = the_container()["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop >= 3  # time for the endpoints and ingress controllers to drop the pod
    # SIGTERM: sockets closed with 1001 (waited for at most drain_timeout), then uvicorn's
    # graceful shutdown; a second each for the poller, leases and Redis.
    drain = GatewayConfig().drain_timeout + GRACEFUL_SHUTDOWN_SECONDS + 3
    assert pod_spec()["terminationGracePeriodSeconds"] > pre_stop + drain


def test_two_replicas_spread_and_a_budget_that_keeps_one() -> None:
    deployment = k8s("Deployment")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    spread = pod_spec()["topologySpreadConstraints"]
    assert spread and all(
        c["labelSelector"]["matchLabels"].items() <= labels.items() for c in spread
    )
    budget = k8s("PodDisruptionBudget")["spec"]
    assert budget["minAvailable"] == 1 < deployment["spec"]["replicas"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()


def test_runs_as_uid_10001_read_only_without_capabilities() -> None:
    pod, container = pod_spec(), the_container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert "USER queuecast" in (ROOT / "Dockerfile").read_text()
    assert "--uid 10001" in (ROOT / "Dockerfile").read_text()
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}


def test_memory_limit_holds_the_socket_cap() -> None:
    max_sockets = int(k8s("ConfigMap")["data"]["QUEUECAST_MAX_SOCKETS"])
    resources = the_container()["resources"]
    needed = BASE_RSS_MIB + max_sockets * KIB_PER_SOCKET / 1024
    assert mebibytes(resources["limits"]["memory"]) >= needed * 1.25
    assert resources["requests"]["memory"] == resources["limits"]["memory"]


def test_keys_come_from_the_mounted_secret_never_from_the_manifests() -> None:
    container, secret = the_container(), k8s("Secret")
    env = {e["name"]: e for e in container["env"]}
    config = k8s("ConfigMap")["data"]
    for key in ("QUEUECAST_SECRET", "QUEUECAST_EVENTS_KEY", "QUEUECAST_TOKEN_KEYS"):
        assert key not in env and key not in config, key
    assert not any("secretKeyRef" in e.get("valueFrom", {}) for e in env.values())
    (volume,) = [v for v in pod_spec()["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    for variable, key in (
        ("QUEUECAST_SECRET_FILE", "secret"),
        ("QUEUECAST_EVENTS_KEY_FILE", "events-key"),
    ):
        assert env[variable]["value"] == f"{mount['mountPath']}/{key}"
        assert key in secret["stringData"]


def test_settings_in_the_manifests_are_ones_serve_parses() -> None:
    environ = dict(k8s("ConfigMap")["data"])
    for variable in the_container()["env"]:
        environ[variable["name"]] = variable.get("value", "queuecast-7d9f8-abcde")  # fieldRef
    known = {Settings.env_name(f.name) for f in Settings.options()}
    unknown = set(environ) - known
    assert unknown <= SETTINGS_BEING_ADDED, sorted(unknown - SETTINGS_BEING_ADDED)
    Settings.load(environ=environ)  # raises on a value serve would refuse


def test_forwarded_headers_trusted_from_a_network_not_from_everyone() -> None:
    allowed = k8s("ConfigMap")["data"]["QUEUECAST_FORWARDED_ALLOW_IPS"]
    for part in allowed.split(","):
        network = ipaddress.ip_network(part.strip())
        assert network.prefixlen > 0, part


def test_service_account_carries_the_irsa_role() -> None:
    account = k8s("ServiceAccount")
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@-]+", role)
    assert pod_spec()["serviceAccountName"] == account["metadata"]["name"]


def test_ingress_keeps_websockets_open_and_limits_connections_per_client() -> None:
    ingress = k8s("Ingress")
    annotations = ingress["metadata"]["annotations"]
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 3600
    assert int(annotations["nginx.ingress.kubernetes.io/limit-connections"]) > 0
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    service = k8s("Service")
    assert path["backend"]["service"]["name"] == service["metadata"]["name"]
    (port,) = service["spec"]["ports"]
    assert path["backend"]["service"]["port"] == {"name": port["name"]}
    assert port["targetPort"] == the_container()["ports"][0]["name"]
    labels = k8s("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_replicas_count_clients_not_the_balancer() -> None:
    """Issue 14, item 1: the proxy names the client, the replicas trust only the proxy."""
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    ws = conf[conf.index("location /ws") :]
    ws = ws[: ws.index("}")]
    assert "limit_conn sockets_per_client" in ws
    assert "limit_conn_zone $binary_remote_addr zone=sockets_per_client" in conf
    # Replaced, not appended to what the client sent.
    assert conf.count("proxy_set_header X-Forwarded-For $remote_addr;") == 2
    assert "$proxy_add_x_forwarded_for" not in conf
    doc = compose()
    lb_address = doc["services"]["lb"]["networks"]["default"]["ipv4_address"]
    subnet = doc["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(lb_address) in ipaddress.ip_network(subnet)
    for name in ("queuecast-1", "queuecast-2"):
        env = doc["services"][name]["environment"]
        assert env["QUEUECAST_FORWARDED_ALLOW_IPS"] == lb_address
        assert "ports" not in doc["services"][name]  # reachable only through the balancer
