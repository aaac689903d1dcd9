"""Checks the expanded CloudFormation template (what `sam deploy` would create) for what a
reader of the deployed stack relies on: `python check_template.py target/template.expanded.json`.

- No function's environment holds a secret: no NoEcho parameter reaches it, and every variable
  that names a secret holds only a Secrets Manager secret's ARN.
- Least privilege on secrets: a function may read a secret (secretsmanager:GetSecretValue) only
  if its environment names it, and can read each secret its environment names.
- Throttling: default route limits, and the stricter ones on each route that sends a code.
- Access logs in JSON with no path, query string, header or authorizer field.
- Each metric filter on the functions' logs matches a message the Rust code logs, and each
  alarm notifies the alarm topic.

Prints every problem found and exits 1 if there is any.
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SENDING_ROUTES = [
    "POST /v1/otps/sms/login_or_create",
    "POST /v1/otps/sms/send",
    "POST /v1/otps/email/login_or_create",
    "POST /v1/otps/email/send",
]
# Environment variables that may name a secret; their value must be a secret's ARN.
SECRET_REFERENCE = re.compile(r"_SECRET_ARN$")
# Names that would hold a secret's value in plain text.
SECRET_LOOKING = re.compile(r"(KEY|SECRET|PEM|TOKEN|PASSWORD)", re.IGNORECASE)
# Access log variables that could carry identifiers or credentials.
FORBIDDEN_LOG_VARIABLES = re.compile(r"\$context\.(path|authorizer|identity\.user|requestOverride)", re.IGNORECASE)


def refs_in(value):
    """Every resource or parameter a value refers to, through Ref, GetAtt, Sub, If, Join..."""
    found = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                if not inner.startswith("AWS::"):
                    found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else str(inner).split(".")[0]
                found.add(target)
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found.update(name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", text))
                if isinstance(inner, list):
                    found.update(refs_in(inner[1]))
            else:
                found.update(refs_in(inner))
    elif isinstance(value, list):
        for inner in value:
            found.update(refs_in(inner))
    return found


def statements_of(role):
    """Every statement of the role's inline policies; a conditional one (Fn::If) as it is when
    its condition holds (the deployment where the function may read the most)."""
    for policy in role.get("Properties", {}).get("Policies", []):
        for statement in policy.get("PolicyDocument", {}).get("Statement", []):
            if "Fn::If" in statement:
                statement = statement["Fn::If"][1]
            if isinstance(statement, dict):
                yield statement


def as_list(value):
    return value if isinstance(value, list) else [value]


def main() -> int:
    template = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    parameters = template.get("Parameters", {})
    resources = template["Resources"]
    no_echo = {name for name, p in parameters.items() if str(p.get("NoEcho", "")).lower() == "true"}
    secrets = {name for name, r in resources.items() if r["Type"] == "AWS::SecretsManager::Secret"}
    problems = []

    functions = {name: r for name, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    if not functions:
        problems.append("no AWS::Lambda::Function in the expanded template")
    for name, function in functions.items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        named_secrets = set()
        for variable, value in variables.items():
            leaked = refs_in(value) & no_echo
            if leaked:
                problems.append(f"{name}: {variable} carries the NoEcho parameter(s) {sorted(leaked)}")
            if SECRET_REFERENCE.search(variable):
                targets = refs_in(value)
                if not targets or not targets <= secrets or isinstance(value, str):
                    problems.append(f"{name}: {variable} must be a Ref to a Secrets Manager secret, is {value!r}")
                named_secrets |= targets & secrets
            elif SECRET_LOOKING.search(variable) and not variable.endswith("_SHA256_ARN"):
                problems.append(f"{name}: {variable} looks like a secret in plain text ({value!r})")

        role_ref = refs_in(function["Properties"].get("Role"))
        readable = set()
        for role_name in role_ref:
            role = resources.get(role_name, {})
            for statement in statements_of(role):
                actions = {a.lower() for a in as_list(statement.get("Action", []))}
                if statement.get("Effect") != "Allow":
                    continue
                if any(a in ("secretsmanager:*", "*") for a in actions):
                    problems.append(f"{name}: a wildcard action allows every secret")
                if "secretsmanager:getsecretvalue" in actions:
                    targets = set()
                    for resource in as_list(statement.get("Resource", [])):
                        if resource == "*":
                            problems.append(f"{name}: secretsmanager:GetSecretValue on every secret")
                        targets |= refs_in(resource)
                    readable |= targets
        if readable - named_secrets:
            problems.append(f"{name}: may read {sorted(readable - named_secrets)} which its environment does not name")
        if named_secrets - readable:
            problems.append(f"{name}: names {sorted(named_secrets - readable)} but may not read it")

    stages = [r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    if len(stages) != 1:
        problems.append(f"expected one HTTP API stage, found {len(stages)}")
    for stage in stages:
        props = stage["Properties"]
        default = props.get("DefaultRouteSettings", {})
        for limit in ("ThrottlingRateLimit", "ThrottlingBurstLimit"):
            if refs_in(default.get(limit)) != {limit.replace("Throttling", "Throttle")}:
                problems.append(f"stage: DefaultRouteSettings.{limit} must be the parameter {limit.replace('Throttling', 'Throttle')}")
        route_settings = props.get("RouteSettings", {})
        for route in SENDING_ROUTES:
            settings = route_settings.get(route, {})
            for limit in ("ThrottlingRateLimit", "ThrottlingBurstLimit"):
                wanted = "Send" + limit.replace("Throttling", "Throttle")
                if refs_in(settings.get(limit)) != {wanted}:
                    problems.append(f"stage: RouteSettings[{route!r}].{limit} must be the parameter {wanted}")
        access = props.get("AccessLogSettings", {})
        log_format = access.get("Format", "")
        try:
            fields = json.loads(log_format)
        except ValueError:
            problems.append("stage: the access log format is not JSON")
            fields = {}
        if "status" not in fields or "routeKey" not in fields:
            problems.append("stage: the access log must record routeKey and status")
        if FORBIDDEN_LOG_VARIABLES.search(log_format):
            problems.append(f"stage: the access log records a path, authorizer or identity field: {log_format}")
        if not refs_in(access.get("DestinationArn")):
            problems.append("stage: access logs have no destination")

    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "shared" / "src").rglob("*.rs"))
    filters = {name: r for name, r in resources.items() if r["Type"] == "AWS::Logs::MetricFilter"}
    for name, metric_filter in filters.items():
        for message in re.findall(r'\$\.fields\.message = "([^"]+)"', metric_filter["Properties"]["FilterPattern"]):
            if f'"{message}"' not in sources:
                problems.append(f"{name}: no Rust source logs the message {message!r} it counts")

    alarms = {name: r for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    watched = set()
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        if not props.get("AlarmActions"):
            problems.append(f"{name}: notifies nobody")
        watched.add(props.get("MetricName"))
        for metric in props.get("Metrics", []):
            watched.add(metric.get("MetricStat", {}).get("Metric", {}).get("MetricName"))
    for metric in ("5xx", "ThrottledRequests", "SmsDeliveryFailures", "EmailDeliveryFailures"):
        if metric not in watched:
            problems.append(f"no alarm watches {metric}")

    for problem in problems:
        print(f"check_template: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"check_template: {len(functions)} functions, {len(secrets)} secrets, {len(alarms)} alarms: clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
